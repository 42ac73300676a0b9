// Session tokens for the web client.

export interface Session {
  token: string;
  expiresAt: number;
}

/** Whether a session token has expired at the given time. */
export function isExpired(session: Session, now: number = Date.now()): boolean {
  return session.expiresAt <= now;
}

export class SessionStore {
  private sessions = new Map<string, Session>();

  /** Remember a session under its user id. */
  save(userId: string, session: Session): void {
    this.sessions.set(userId, session);
  }
}
