"""Configuration loading."""

import json
import os


# Environment variables win over the file so that containers can override it.
def load_config(path):
    with open(path) as fh:
        config = json.load(fh)
    for key in list(config):
        env = os.environ.get("APP_" + key.upper())
        if env is not None:
            config[key] = env
    return config


class Settings:
    """Typed access to the application's settings."""

    def __init__(self, data):
        self.data = data

    def database_url(self):
        """The connection string of the primary database."""
        return self.data.get("database_url", "sqlite:///app.db")
