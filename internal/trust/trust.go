package trust

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/audit"
)

// FileName is the workspace policy's name at the workspace root.
const FileName = ".cordon.toml"

// MaxFileSize bounds what Read and Load read of a policy file. A larger
// file is refused, never read in part.
const MaxFileSize = 1 << 20

// maxStoreSize bounds the store file itself: some ten thousand records.
const maxStoreSize = 4 << 20

// storeVersion is the "version" of the store file this package writes and
// reads. A store of another version is an error, not an empty store.
const storeVersion = 1

// Record is one trusted file: its canonical path, the SHA-256 of its bytes
// (lower-case hex) and when it was trusted.
type Record struct {
	Path    string    `json:"path"`
	SHA256  string    `json:"sha256"`
	Trusted time.Time `json:"trusted"`
}

// storeFile is the JSON of the store.
type storeFile struct {
	Version int      `json:"version"`
	Trusted []Record `json:"trusted"`
}

// Store is the record of trusted workspace policy files, one JSON file in
// the user's state directory. Its methods are safe for concurrent use, and
// several processes may change one store at once (see the package comment).
type Store struct {
	path    string
	mu      sync.Mutex
	records []Record // sorted by Path
}

// DefaultPath is $XDG_STATE_HOME/cordon/trust.json, or
// ~/.local/state/cordon/trust.json: a directory every sandbox masks.
func DefaultPath() (string, error) {
	dir, err := audit.StateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "trust.json"), nil
}

// Open reads the store at path. A missing file is an empty store; a file
// that is not a trust store is an error.
func Open(path string) (*Store, error) {
	recs, err := readStore(path)
	if err != nil {
		return nil, err
	}
	return &Store{path: path, records: recs}, nil
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// List returns the records, sorted by path.
func (s *Store) List() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// Trust records file's canonical path with the SHA-256 of its bytes now,
// replacing a record of the same path. A file already trusted with these
// bytes keeps its record, which Trust returns.
func (s *Store) Trust(file string) (Record, error) {
	path, data, err := Read(file)
	if err != nil {
		return Record{}, err
	}
	rec := Record{Path: path, SHA256: digest(data), Trusted: time.Now().UTC().Truncate(time.Second)}
	err = s.update(func(recs []Record) ([]Record, bool) {
		for i, r := range recs {
			if r.Path == path {
				if r.SHA256 == rec.SHA256 {
					rec = r
					return recs, false
				}
				recs[i] = rec
				return recs, true
			}
		}
		return append(recs, rec), true
	})
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}

// Revoke forgets file, and reports whether it was trusted. The file need
// not exist any more: a workspace that was removed can still be revoked by
// the path it had.
func (s *Store) Revoke(file string) (bool, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return false, fmt.Errorf("revoking %s: %w", file, err)
	}
	path, err := canonical(abs)
	if errors.Is(err, fs.ErrNotExist) {
		path = abs
	} else if err != nil {
		return false, err
	}
	found := false
	err = s.update(func(recs []Record) ([]Record, bool) {
		kept := recs[:0]
		for _, r := range recs {
			if r.Path == path || r.Path == abs {
				found = true
				continue
			}
			kept = append(kept, r)
		}
		return kept, found
	})
	return found, err
}

// Load reads file once and returns its bytes if its canonical path is
// recorded with the SHA-256 of exactly these bytes. Otherwise data is nil,
// ok is false and why says why: "not trusted", "changed since trusted on
// 2006-01-02 15:04 UTC", "trusted at another path (/other/.cordon.toml)",
// or "it is a symbolic link (to ...), which cannot be trusted" (or a
// directory, a named pipe, ..., larger than 1 MiB). It never
// parses the file; the caller parses data and does not read the file
// again. A missing file is an error that errors.Is fs.ErrNotExist.
func (s *Store) Load(file string) (data []byte, ok bool, why string, err error) {
	path, data, err := Read(file)
	var ref *refusedError
	if errors.As(err, &ref) {
		return nil, false, "it is " + ref.what + ", which cannot be trusted", nil
	}
	if err != nil {
		return nil, false, "", err
	}
	sum := digest(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.records {
		if r.Path != path {
			continue
		}
		if r.SHA256 == sum {
			return data, true, "", nil
		}
		return nil, false, "changed since trusted on " + r.Trusted.UTC().Format("2006-01-02 15:04 UTC"), nil
	}
	for _, r := range s.records {
		if r.SHA256 == sum {
			return nil, false, fmt.Sprintf("trusted at another path (%s)", r.Path), nil
		}
	}
	return nil, false, "not trusted", nil
}

// refusedError is a file that cannot be trusted whatever it holds.
type refusedError struct {
	path string
	what string // "a symbolic link (to ...)", "larger than 1 MiB", ...
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("cannot trust %s: it is %s; only a regular file of at most 1 MiB can be trusted (a link could point anywhere, and change without the workspace changing)", e.path, e.what)
}

// Read returns file's canonical path and its bytes, read once through one
// descriptor: what Trust hashes and Load hands out. A symbolic link, a file
// that is not regular, or one over MaxFileSize is refused with an error
// that says so.
func Read(file string) (path string, data []byte, err error) {
	path, err = canonical(file)
	if err != nil {
		return "", nil, err
	}
	// O_NOFOLLOW: the file itself must not be a link. O_NONBLOCK: a FIFO
	// put in its place must not hang the open; it is refused below.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ELOOP) {
		what := "a symbolic link"
		if target, lerr := os.Readlink(path); lerr == nil {
			what += " (to " + target + ")"
		}
		return "", nil, &refusedError{path, what}
	}
	if err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return "", nil, &refusedError{path, describe(fi.Mode())}
	}
	data, err = io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return "", nil, &refusedError{path, "larger than 1 MiB"}
	}
	return path, data, nil
}

// describe names a file type that is not a regular file.
func describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// canonical is file's absolute path with the symbolic links of its
// directory resolved. The last element is kept as it is: Read refuses it
// if it is a link.
func canonical(file string) (string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", file, err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", filepath.Dir(abs), err)
	}
	return filepath.Join(dir, filepath.Base(abs)), nil
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// update changes the store under its lock: it reads the file again (other
// processes may have changed it since Open), applies change, and writes the
// result if change says it changed anything.
func (s *Store) update(change func([]Record) ([]Record, bool)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("creating the trust store's directory: %w", err)
	}
	unlock, err := lockFile(s.path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	recs, err := readStore(s.path)
	if err != nil {
		return err
	}
	recs, changed := change(recs)
	sort.Slice(recs, func(i, j int) bool { return recs[i].Path < recs[j].Path })
	if changed {
		if err := writeStore(s.path, recs); err != nil {
			return err
		}
	}
	s.records = recs
	return nil
}

// lockFile takes an exclusive flock(2) on path, creating it. The lock file
// is never removed: removing it would let two processes lock two files.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the trust store: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the trust store: flock %s: %w", path, err)
	}
	// Closing the descriptor releases the lock.
	return func() { f.Close() }, nil
}

// readStore reads the store at path; a missing file has no records.
func readStore(path string) ([]Record, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []Record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the trust store: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStoreSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the trust store: %w", err)
	}
	if len(data) > maxStoreSize {
		return nil, corrupt(path, fmt.Errorf("larger than %d bytes", maxStoreSize))
	}
	recs, err := decodeStore(data)
	if err != nil {
		return nil, corrupt(path, err)
	}
	return recs, nil
}

// corrupt says which store is unreadable and how to get out.
func corrupt(path string, err error) error {
	return fmt.Errorf("trust store %s is not valid: %w (repair it, or remove it and run \"cordon trust\" again in each workspace to trust)", path, err)
}

// decodeStore checks the whole store: a record that is not exactly what
// Trust writes makes the store invalid, rather than being skipped.
func decodeStore(data []byte) ([]Record, error) {
	var sf storeFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sf); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON object")
	}
	if sf.Version != storeVersion {
		return nil, fmt.Errorf("version %d, want %d", sf.Version, storeVersion)
	}
	seen := map[string]bool{}
	for i, r := range sf.Trusted {
		switch {
		case !filepath.IsAbs(r.Path) || filepath.Clean(r.Path) != r.Path:
			return nil, fmt.Errorf("trusted[%d]: path %q is not a clean absolute path", i, r.Path)
		case seen[r.Path]:
			return nil, fmt.Errorf("trusted[%d]: path %q recorded twice", i, r.Path)
		case !isDigest(r.SHA256):
			return nil, fmt.Errorf("trusted[%d]: sha256 %q is not 64 lower-case hex digits", i, r.SHA256)
		case r.Trusted.IsZero():
			return nil, fmt.Errorf("trusted[%d]: no time", i)
		}
		seen[r.Path] = true
	}
	recs := append([]Record{}, sf.Trusted...)
	sort.Slice(recs, func(i, j int) bool { return recs[i].Path < recs[j].Path })
	return recs, nil
}

func isDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// writeStore replaces the store at path with recs: a temporary file in the
// same directory (mode 0600), synced, renamed over path, and the directory
// synced, so that a crash leaves the old store or the new one.
func writeStore(path string, recs []Record) error {
	data, err := json.MarshalIndent(storeFile{Version: storeVersion, Trusted: recs}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the trust store: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".trust-*.json")
	if err != nil {
		return fmt.Errorf("writing the trust store: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("writing the trust store: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing the trust store: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing the trust store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the trust store: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing the trust store: %w", err)
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
