package trust

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const policy = "[network]\nallow = [\"example.com\"]\n"

// workspace makes a directory holding a .cordon.toml with content, and
// returns the file's canonical path.
func workspace(t *testing.T, content string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, FileName)
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "cordon", "trust.json")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	return s, path
}

func mustTrust(t *testing.T, s *Store, file string) Record {
	t.Helper()
	rec, err := s.Trust(file)
	if err != nil {
		t.Fatalf("Trust(%s) = %v", file, err)
	}
	return rec
}

// wantLoad checks Load's answer: the file's bytes when ok, nil and a why
// with wantWhy in it otherwise.
func wantLoad(t *testing.T, s *Store, file string, wantOK bool, wantWhy string) {
	t.Helper()
	data, ok, why, err := s.Load(file)
	if err != nil {
		t.Fatalf("Load(%s) error %v", file, err)
	}
	if ok != wantOK || !strings.Contains(why, wantWhy) {
		t.Fatalf("Load(%s) = ok %v why %q, want ok %v why containing %q", file, ok, why, wantOK, wantWhy)
	}
	if !ok && data != nil {
		t.Errorf("Load(%s) returned %d bytes of an untrusted file", file, len(data))
	}
	if ok {
		want, _ := os.ReadFile(file)
		if !bytes.Equal(data, want) {
			t.Errorf("Load(%s) = %q, want the file's bytes %q", file, data, want)
		}
	}
}

func TestTrustThenLoad(t *testing.T) {
	s, path := openStore(t)
	file := workspace(t, policy)
	wantLoad(t, s, file, false, "not trusted")

	rec := mustTrust(t, s, file)
	if rec.Path != file || rec.SHA256 != digest([]byte(policy)) || rec.Trusted.IsZero() {
		t.Errorf("Trust(%s) = %+v", file, rec)
	}
	wantLoad(t, s, file, true, "")

	// Saved: a new Store (another cordon process) sees it.
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	wantLoad(t, s2, file, true, "")

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("store mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("store directory mode %v, want 0700", di.Mode().Perm())
	}
	if tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".trust-*")); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}

// The path is canonical: a file reached through a link to its directory,
// or by a relative path, is the same file.
func TestLoadThroughOtherNames(t *testing.T) {
	s, _ := openStore(t)
	file := workspace(t, policy)
	mustTrust(t, s, file)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Dir(file), link); err != nil {
		t.Fatal(err)
	}
	wantLoad(t, s, filepath.Join(link, FileName), true, "")
	t.Chdir(filepath.Dir(file))
	wantLoad(t, s, FileName, true, "")
}

func TestLoadChanged(t *testing.T) {
	s, _ := openStore(t)
	file := workspace(t, policy)
	rec := mustTrust(t, s, file)
	changed := []byte(policy)
	changed[len(changed)-3] = 'n' // one byte: example.con
	if err := os.WriteFile(file, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	wantLoad(t, s, file, false, "changed since trusted on "+rec.Trusted.Format("2006-01-02 15:04 UTC"))
	// Trusting again records the new bytes.
	mustTrust(t, s, file)
	wantLoad(t, s, file, true, "")
	if n := len(s.List()); n != 1 {
		t.Errorf("List() has %d records after trusting one file twice, want 1", n)
	}
}

// Trusting the same bytes again keeps the first record.
func TestTrustAgainKeepsRecord(t *testing.T) {
	s, path := openStore(t)
	file := workspace(t, policy)
	old := mustTrust(t, s, file)
	old.Trusted = old.Trusted.Add(-24 * time.Hour)
	if err := writeStore(path, []Record{old}); err != nil { // as if trusted yesterday
		t.Fatal(err)
	}
	if again := mustTrust(t, s, file); again != old {
		t.Errorf("Trust again = %+v, want the stored record %+v", again, old)
	}
}

// The same bytes in another place (a copy of the workspace) are not
// trusted: a policy is trusted for the workspace it was reviewed in.
func TestLoadSameBytesElsewhere(t *testing.T) {
	s, _ := openStore(t)
	file := workspace(t, policy)
	mustTrust(t, s, file)
	copied := workspace(t, policy)
	wantLoad(t, s, copied, false, "trusted at another path ("+file+")")
}

func TestLoadMissing(t *testing.T) {
	s, _ := openStore(t)
	for _, file := range []string{
		filepath.Join(t.TempDir(), FileName),
		filepath.Join(t.TempDir(), "gone", FileName),
	} {
		if _, ok, _, err := s.Load(file); ok || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%s) = ok %v, %v; want an error that is fs.ErrNotExist", file, ok, err)
		}
	}
}

func TestRevoke(t *testing.T) {
	s, path := openStore(t)
	file := workspace(t, policy)
	other := workspace(t, policy+"# other\n")
	mustTrust(t, s, file)
	mustTrust(t, s, other)
	if ok, err := s.Revoke(file); !ok || err != nil {
		t.Fatalf("Revoke(%s) = %v, %v; want true", file, ok, err)
	}
	wantLoad(t, s, file, false, "not trusted")
	wantLoad(t, s, other, true, "")
	if ok, err := s.Revoke(file); ok || err != nil {
		t.Errorf("Revoke(%s) again = %v, %v; want false", file, ok, err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	wantLoad(t, s2, file, false, "not trusted")

	// A removed workspace is revoked by the path it had.
	if err := os.RemoveAll(filepath.Dir(other)); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Revoke(other); !ok || err != nil {
		t.Errorf("Revoke(%s) of a removed workspace = %v, %v; want true", other, ok, err)
	}
	if n := len(s.List()); n != 0 {
		t.Errorf("List() = %v after revoking all", s.List())
	}
}

func TestList(t *testing.T) {
	s, _ := openStore(t)
	if l := s.List(); len(l) != 0 {
		t.Fatalf("List() of a new store = %v", l)
	}
	a, b := workspace(t, "# a\n"), workspace(t, "# b\n")
	mustTrust(t, s, a)
	mustTrust(t, s, b)
	l := s.List()
	if len(l) != 2 || l[0].Path > l[1].Path {
		t.Fatalf("List() = %v, want 2 records sorted by path", l)
	}
	for _, r := range l {
		if r.Path != a && r.Path != b {
			t.Errorf("List() holds %s", r.Path)
		}
	}
	l[0].Path = "/changed"
	if s.List()[0].Path == "/changed" {
		t.Errorf("List() returned the store's own slice")
	}
}

// A file that is not a plain file of the workspace is refused, and Load
// says why instead of reading it.
func TestRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere.toml")
	if err := os.WriteFile(target, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := map[string]func(p string) error{
		"symbolic link": func(p string) error { return os.Symlink(target, p) },
		"dangling link": func(p string) error { return os.Symlink(filepath.Join(dir, "none"), p) },
		"directory":     func(p string) error { return os.Mkdir(p, 0o755) },
		"named pipe":    func(p string) error { return unix.Mkfifo(p, 0o644) },
		"larger than 1 MiB": func(p string) error {
			return os.WriteFile(p, bytes.Repeat([]byte("#"), MaxFileSize+1), 0o644)
		},
	}
	want := map[string]string{"dangling link": "symbolic link"}
	for name, create := range mk {
		t.Run(name, func(t *testing.T) {
			s, _ := openStore(t)
			file := filepath.Join(t.TempDir(), FileName)
			if err := create(file); err != nil {
				t.Fatal(err)
			}
			w := name
			if want[name] != "" {
				w = want[name]
			}
			if _, err := s.Trust(file); err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Trust(%s) = %v, want an error saying %q", name, err, w)
			}
			wantLoad(t, s, file, false, w)
			if l := s.List(); len(l) != 0 {
				t.Errorf("a refused file was recorded: %v", l)
			}
		})
	}
	// Exactly the limit is fine.
	s, _ := openStore(t)
	file := workspace(t, strings.Repeat("#", MaxFileSize))
	mustTrust(t, s, file)
	wantLoad(t, s, file, true, "")
}

// A store that is not exactly what Trust writes is an error naming the
// file and the way out; it is never taken as empty, nor overwritten.
func TestCorruptStore(t *testing.T) {
	sum := digest(nil)
	rec := func(path, sha, when string) string {
		return fmt.Sprintf(`{"path":%q,"sha256":%q,"trusted":%q}`, path, sha, when)
	}
	good := rec("/ws/.cordon.toml", sum, "2026-01-02T03:04:05Z")
	tests := []struct{ name, data, want string }{
		{"empty", "", "EOF"},
		{"not JSON", "trusted: yes\n", "invalid character"},
		{"no version", `{"trusted":[]}`, "version 0"},
		{"other version", `{"version":2,"trusted":[]}`, "version 2"},
		{"unknown key", `{"version":1,"trusted":[],"extra":1}`, "unknown field"},
		{"trailing data", `{"version":1,"trusted":[]} {}`, "data after"},
		{"truncated", `{"version":1,"trusted":[` + good, "EOF"},
		{"relative path", `{"version":1,"trusted":[` + rec("ws/.cordon.toml", sum, "2026-01-02T03:04:05Z") + `]}`, "not a clean absolute path"},
		{"unclean path", `{"version":1,"trusted":[` + rec("/ws/../ws/.cordon.toml", sum, "2026-01-02T03:04:05Z") + `]}`, "not a clean absolute path"},
		{"twice", `{"version":1,"trusted":[` + good + "," + good + `]}`, "recorded twice"},
		{"short digest", `{"version":1,"trusted":[` + rec("/ws/.cordon.toml", sum[:10], "2026-01-02T03:04:05Z") + `]}`, "sha256"},
		{"upper-case digest", `{"version":1,"trusted":[` + rec("/ws/.cordon.toml", strings.ToUpper(sum), "2026-01-02T03:04:05Z") + `]}`, "sha256"},
		{"no time", `{"version":1,"trusted":[{"path":"/ws/.cordon.toml","sha256":"` + sum + `"}]}`, "no time"},
		{"too large", `{"version":1,"trusted":[]}` + strings.Repeat(" ", maxStoreSize), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "trust.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.want) ||
				!strings.Contains(err.Error(), "remove it") {
				t.Fatalf("Open(%s) = %v, want an error naming the file, saying %q and how to fix it", tt.name, err, tt.want)
			}
		})
	}

	// Corrupted after Open: Trust and Revoke fail and leave the file alone.
	s, path := openStore(t)
	file := workspace(t, policy)
	mustTrust(t, s, file)
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Trust(workspace(t, "# b\n")); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Trust with a corrupt store = %v, want an error naming %s", err, path)
	}
	if _, err := s.Revoke(file); err == nil {
		t.Errorf("Revoke with a corrupt store succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "garbage" {
		t.Errorf("a corrupt store was overwritten with %q", b)
	}
}

// Concurrent cordon processes, each with its own Store, keep each other's
// records; so do goroutines sharing one Store.
func TestConcurrentTrust(t *testing.T) {
	_, path := openStore(t)
	shared, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var files []string
	for i := 0; i < 2*n; i++ {
		files = append(files, workspace(t, fmt.Sprintf("# %d\n", i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i, file := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := shared
			if i%2 == 0 {
				var err error
				if s, err = Open(path); err != nil {
					errs <- err
					return
				}
			}
			if _, err := s.Trust(file); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.List()); got != len(files) {
		t.Fatalf("%d records after %d concurrent Trusts", got, len(files))
	}
	for _, f := range files {
		wantLoad(t, s, f, true, "")
	}
}

func TestDefaultPath(t *testing.T) {
	tests := []struct{ xdg, home, want string }{
		{"/state", "/home/u", "/state/cordon/trust.json"},
		{"", "/home/u", "/home/u/.local/state/cordon/trust.json"},
		{"relative", "/home/u", "/home/u/.local/state/cordon/trust.json"},
	}
	for _, tt := range tests {
		t.Setenv("XDG_STATE_HOME", tt.xdg)
		t.Setenv("HOME", tt.home)
		if got, err := DefaultPath(); got != tt.want || err != nil {
			t.Errorf("DefaultPath() with XDG_STATE_HOME=%q = %q, %v; want %q", tt.xdg, got, err, tt.want)
		}
	}
}
