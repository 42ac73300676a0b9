package native

import "hash/fnv"

// Fingerprint computes a stable 64-bit FNV-1a hash of a byte slice.
func Fingerprint(data []byte) uint64 {
	h := fnv.New64a()
	h.Write(data)
	return h.Sum64()
}

// Ring is a consistent-hashing ring of server names.
type Ring struct {
	nodes []string
}

// Pick returns the server responsible for a key.
func (r *Ring) Pick(key string) string {
	if len(r.nodes) == 0 {
		return ""
	}
	return r.nodes[Fingerprint([]byte(key))%uint64(len(r.nodes))]
}
