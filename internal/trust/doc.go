// Package trust records which workspace policy files (.cordon.toml) the
// user has trusted, and hands out a file's bytes only while they are the
// bytes that were trusted.
//
// A workspace policy can open the network, make paths writable and inject
// secrets, so a cloned repository must not configure its own walls. Cordon
// uses a workspace policy only after `cordon trust` recorded it:
//
//	s, err := trust.Open(path) // path from trust.DefaultPath()
//	if err != nil {
//		return err
//	}
//	data, ok, why, err := s.Load("/ws/.cordon.toml")
//	switch {
//	case errors.Is(err, fs.ErrNotExist):
//		// no workspace policy
//	case err != nil:
//		return err
//	case !ok:
//		// ignore the file and say why; data is nil
//	default:
//		// parse data: never read the file again
//	}
//
// # What a record holds
//
// The file's canonical path (absolute, the symbolic links of its directory
// resolved) and the SHA-256 of its bytes. Changing one byte, or copying the
// workspace elsewhere, makes the file untrusted again. A .cordon.toml that
// is itself a symbolic link is never trusted: what it points to could be
// anywhere and change without the workspace changing.
//
// # What it guarantees
//
// [Store.Load] reads the file once, through one descriptor, at most
// [MaxFileSize] bytes, and never parses it: an untrusted file's content
// reaches no parser, not even to report a syntax error. The bytes it
// returns are the bytes it hashed, so what was checked is what is used.
//
// The store is one JSON file, [DefaultPath]: $XDG_STATE_HOME/cordon/trust.json,
// or ~/.local/state/cordon/trust.json, which every sandbox masks. Each change
// is made under an exclusive flock(2) on trust.json.lock next to it: the
// store is read again under the lock, changed, written to a temporary file
// in the same directory (mode 0600), synced and renamed over the old one.
// Concurrent cordon processes therefore keep each other's records, and a
// reader sees the old store or the new one, never a partial one. A store
// that cannot be read as a trust store is an error that names the file; it
// is never taken as empty, and never overwritten.
//
// It does not guard against the user's own account: anything running as
// the user outside a sandbox can edit the store or the policy file.
package trust
