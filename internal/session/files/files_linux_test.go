package files

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fixture is a session root laid out the way a hostile session would lay
// it out, in dir/root, beside dir/outside, which must never change.
type fixture struct {
	dir     string
	rootDir string
	outside string
	root    *os.Root
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{dir: t.TempDir()}
	fx.rootDir = filepath.Join(fx.dir, "root")
	fx.outside = filepath.Join(fx.dir, "outside")
	must(t, os.MkdirAll(filepath.Join(fx.outside, "tmp"), 0o755))
	must(t, os.WriteFile(filepath.Join(fx.outside, "secret"), []byte("outside secret"), 0o644))
	fx.write(t, "workspace/a.txt", "hello")
	fx.write(t, "workspace/sub/b.txt", "bee")
	fx.write(t, "data/inner.txt", "inner")
	fx.symlink(t, "/", "workspace/toroot")
	fx.symlink(t, "/etc/passwd", "workspace/passwd")
	fx.symlink(t, "../../outside", "workspace/up")
	fx.symlink(t, "../data", "workspace/datalink")
	fx.symlink(t, "chain2", "workspace/chain1")
	fx.symlink(t, "chain3", "workspace/chain2")
	fx.symlink(t, "a.txt", "workspace/chain3")
	fx.symlink(t, "dchain2", "workspace/dchain1")
	fx.symlink(t, "sub", "workspace/dchain2")
	fx.symlink(t, "esc2", "workspace/esc1")
	fx.symlink(t, "../../../outside", "workspace/esc2")
	fx.symlink(t, "loop2", "workspace/loop1")
	fx.symlink(t, "loop1", "workspace/loop2")
	must(t, unix.Mkfifo(fx.host("workspace/fifo"), 0o644))
	root, err := os.OpenRoot(fx.rootDir)
	must(t, err)
	t.Cleanup(func() { root.Close() })
	fx.root = root
	return fx
}

func (fx *fixture) host(name string) string { return filepath.Join(fx.rootDir, name) }

func (fx *fixture) write(t *testing.T, name, content string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(fx.host(name)), 0o755))
	must(t, os.WriteFile(fx.host(name), []byte(content), 0o644))
}

func (fx *fixture) symlink(t *testing.T, target, name string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(fx.host(name)), 0o755))
	must(t, os.Symlink(target, fx.host(name)))
}

func (fx *fixture) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(fx.host(name))
	must(t, err)
	return string(b)
}

// snapshot records everything of the tree under dir a change would show:
// each entry's type, mode, modification time, content and link target.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		s := fmt.Sprintf("%v %d", fi.Mode(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			s += " -> " + target
		}
		m[rel] = s
		return nil
	})
	must(t, err)
	return m
}

// sameTree fails the test with the differences between two snapshots.
func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s: was %q, now %q", what, k, v, after[k])
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: %s appeared: %q", what, k, v)
		}
	}
}

// noBlock runs f and fails the test if it has not returned after a
// generous while: an operation blocked on a named pipe never returns.
func noBlock(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s blocked", what)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSessionPath(t *testing.T) {
	tests := []struct {
		in     string
		rootOK bool
		want   string // the name in the root; "" for ErrBadPath
	}{
		{"/workspace/a.txt", false, "workspace/a.txt"},
		{"//workspace//./a.txt/", false, "workspace/a.txt"},
		{"/workspace/../../etc/passwd", false, "etc/passwd"},
		{"/", true, "."},
		{"/..", true, "."},
		{"/", false, ""},
		{"", true, ""},
		{"workspace/a.txt", true, ""},
		{"./a", true, ""},
		{"../a", true, ""},
		{"/work\x00space", true, ""},
		{"/proc", true, ""},
		{"/proc/1/root", true, ""},
		{"/workspace/../proc/self/environ", true, ""},
		{"/sys/kernel", true, ""},
		{"/dev", true, ""},
		{"/dev/null", true, ""},
		{"/procfs", true, "procfs"},
		{"/devices", true, "devices"},
	}
	for _, tt := range tests {
		_, got, err := sessionPath(tt.in, tt.rootOK)
		if tt.want == "" {
			if !errors.Is(err, ErrBadPath) {
				t.Errorf("sessionPath(%q, %v) = %q, %v, want ErrBadPath", tt.in, tt.rootOK, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("sessionPath(%q, %v) = %q, %v, want %q", tt.in, tt.rootOK, got, err, tt.want)
		}
	}
}

func TestStat(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		path   string
		typ    string
		target string
		err    error
	}{
		{path: "/", typ: "dir"},
		{path: "/workspace/a.txt", typ: "file"},
		{path: "/workspace/fifo", typ: "other"},
		{path: "/workspace/toroot", typ: "symlink", target: "/"},
		{path: "/workspace/passwd", typ: "symlink", target: "/etc/passwd"},
		{path: "/workspace/chain1", typ: "symlink", target: "chain2"},
		{path: "/workspace/up", typ: "symlink", target: "../../outside"},
		// Links in the middle are followed, inside the root.
		{path: "/workspace/datalink/inner.txt", typ: "file"},
		{path: "/workspace/dchain1/b.txt", typ: "file"},
		// ... and refused when they lead out.
		{path: "/workspace/toroot/etc/passwd", err: ErrBadPath},
		{path: "/workspace/up/secret", err: ErrBadPath},
		{path: "/workspace/esc1/secret", err: ErrBadPath},
		{path: "/workspace/loop1/x", err: ErrBadPath},
		// ".." cannot climb above the session's /.
		{path: "/workspace/../../../etc/passwd", err: fs.ErrNotExist},
		{path: "/../outside/secret", err: fs.ErrNotExist},
		{path: "/workspace/nope", err: fs.ErrNotExist},
		{path: "/proc/self", err: ErrBadPath},
		{path: "workspace", err: ErrBadPath},
	}
	for _, tt := range tests {
		got, err := Stat(fx.root, tt.path)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Stat(%q) = %+v, %v, want %v", tt.path, got, err, tt.err)
			}
			continue
		}
		if err != nil || got.Type != tt.typ || got.Target != tt.target {
			t.Errorf("Stat(%q) = %+v, %v, want type %q target %q", tt.path, got, err, tt.typ, tt.target)
		}
	}

	got, err := Stat(fx.root, "/workspace//a.txt")
	must(t, err)
	fi, err := os.Stat(fx.host("workspace/a.txt"))
	must(t, err)
	if got.Name != "a.txt" || got.Path != "/workspace/a.txt" || got.Size != 5 || got.Mode != 0o644 || !got.ModTime.Equal(fi.ModTime()) {
		t.Errorf("Stat(/workspace//a.txt) = %+v, want a.txt, /workspace/a.txt, 5 bytes, 0644, %v", got, fi.ModTime())
	}
}

// TestErrorsSayTheSessionPath: errors name what the caller asked for,
// never the server's own paths.
func TestErrorsSayTheSessionPath(t *testing.T) {
	fx := newFixture(t)
	for _, p := range []string{"/workspace/nope", "/workspace/up/secret", "/workspace/loop1/x"} {
		_, err := Stat(fx.root, p)
		if err == nil || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), fx.dir) {
			t.Errorf("Stat(%q) error %q: want it to name %s and not %s", p, err, p, fx.dir)
		}
	}
}

func TestList(t *testing.T) {
	fx := newFixture(t)
	got, err := List(fx.root, "/workspace")
	must(t, err)
	var names []string
	types := map[string]string{}
	targets := map[string]string{}
	for _, e := range got.Entries {
		names = append(names, e.Name)
		types[e.Name] = e.Type
		targets[e.Name] = e.Target
		if e.Path != "/workspace/"+e.Name {
			t.Errorf("entry %q has path %q", e.Name, e.Path)
		}
	}
	want := []string{"a.txt", "chain1", "chain2", "chain3", "datalink", "dchain1", "dchain2", "esc1", "esc2", "fifo", "loop1", "loop2", "passwd", "sub", "toroot", "up"}
	if !slices.Equal(names, want) {
		t.Errorf("List(/workspace) names = %q, want %q", names, want)
	}
	if types["a.txt"] != "file" || types["sub"] != "dir" || types["fifo"] != "other" || types["toroot"] != "symlink" {
		t.Errorf("List(/workspace) types = %v", types)
	}
	if targets["toroot"] != "/" || targets["up"] != "../../outside" || targets["a.txt"] != "" {
		t.Errorf("List(/workspace) targets = %v", targets)
	}
	if got.Path != "/workspace" {
		t.Errorf("List(/workspace).Path = %q", got.Path)
	}

	// A link to a directory is listed inside the root; not outside.
	in, err := List(fx.root, "/workspace/datalink")
	if err != nil || len(in.Entries) != 1 || in.Entries[0].Name != "inner.txt" {
		t.Errorf("List(/workspace/datalink) = %+v, %v, want inner.txt", in, err)
	}
	for _, p := range []string{"/workspace/toroot", "/workspace/up", "/workspace/esc1"} {
		if l, err := List(fx.root, p); !errors.Is(err, ErrBadPath) {
			t.Errorf("List(%q) = %+v, %v, want ErrBadPath", p, l, err)
		}
	}
	noBlock(t, "List of a named pipe", func() {
		if _, err := List(fx.root, "/workspace/fifo"); err == nil {
			t.Error("List(/workspace/fifo) succeeded")
		}
	})
	if _, err := List(fx.root, "/workspace/a.txt"); !errors.Is(err, syscall.ENOTDIR) || !errors.Is(err, ErrBadPath) {
		t.Errorf("List(/workspace/a.txt) = %v, want not a directory", err)
	}
	if _, err := List(fx.root, "/workspace/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List(/workspace/nope) = %v, want not exist", err)
	}
	all, err := List(fx.root, "/")
	if err != nil || len(all.Entries) != 2 {
		t.Errorf("List(/) = %+v, %v, want data and workspace", all, err)
	}
}

func TestListTooLarge(t *testing.T) {
	fx := newFixture(t)
	defer func(n int) { maxEntries = n }(maxEntries)
	maxEntries = 3
	for i := range 4 {
		fx.write(t, fmt.Sprintf("big/%d", i), "")
	}
	if _, err := List(fx.root, "/big"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("List of 4 entries with a limit of 3 = %v, want ErrTooLarge", err)
	}
	if l, err := List(fx.root, "/workspace/sub"); err != nil || len(l.Entries) != 1 {
		t.Errorf("List(/workspace/sub) = %+v, %v", l, err)
	}
}

func TestOpen(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		path string
		want string // content
		err  error
	}{
		{path: "/workspace/a.txt", want: "hello"},
		{path: "/workspace/datalink/inner.txt", want: "inner"},
		{path: "/workspace/dchain1/b.txt", want: "bee"},
		// A final link is not followed, even inside the root.
		{path: "/workspace/chain1", err: ErrNotRegular},
		{path: "/workspace/passwd", err: ErrNotRegular},
		{path: "/workspace/fifo", err: ErrNotRegular},
		{path: "/workspace/sub", err: ErrNotRegular},
		{path: "/workspace/toroot/etc/passwd", err: ErrBadPath},
		{path: "/workspace/up/secret", err: ErrBadPath},
		{path: "/workspace/esc1/secret", err: ErrBadPath},
		{path: "/workspace/../../outside/secret", err: fs.ErrNotExist},
		{path: "/workspace/nope", err: fs.ErrNotExist},
		{path: "/", err: ErrBadPath},
		{path: "/dev/null", err: ErrBadPath},
	}
	for _, tt := range tests {
		noBlock(t, "Open "+tt.path, func() {
			f, fi, err := Open(fx.root, tt.path)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Errorf("Open(%q) = %v, want %v", tt.path, err, tt.err)
				}
				if f != nil {
					f.Close()
				}
				return
			}
			if err != nil {
				t.Errorf("Open(%q) = %v", tt.path, err)
				return
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil || string(b) != tt.want || fi.Size() != int64(len(tt.want)) || !fi.Mode().IsRegular() {
				t.Errorf("Open(%q) read %q, %v, size %d, want %q", tt.path, b, err, fi.Size(), tt.want)
			}
		})
	}
}

func TestOpenDevice(t *testing.T) {
	fx := newFixture(t)
	if err := unix.Mknod(fx.host("workspace/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("cannot make a device node here: %v", err)
	}
	if _, _, err := Open(fx.root, "/workspace/null"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Open of a device = %v, want ErrNotRegular", err)
	}
}

// TestKernelFilesystems: a link can lead into the session's /proc or
// /sys whatever names are refused; what is there is neither read nor
// written. A root opened on /proc/self stands for such a link.
func TestKernelFilesystems(t *testing.T) {
	root, err := os.OpenRoot("/proc/self")
	must(t, err)
	defer root.Close()
	if _, _, err := Open(root, "/status"); !errors.Is(err, ErrBadPath) {
		t.Errorf("Open of a file in /proc = %v, want ErrBadPath", err)
	}
	if err := WriteTar(root, "/", io.Discard); !errors.Is(err, ErrBadPath) {
		t.Errorf("WriteTar of /proc = %v, want ErrBadPath", err)
	}
	if err := Write(root, "/new", strings.NewReader("x"), 0, 10); !errors.Is(err, ErrBadPath) {
		t.Errorf("Write in /proc = %v, want ErrBadPath", err)
	}
	// Stat and List say what is there; that reads nothing of it.
	if _, err := Stat(root, "/status"); err != nil {
		t.Errorf("Stat of a file in /proc = %v", err)
	}
}

func TestOpenRaceWithPipe(t *testing.T) {
	fx := newFixture(t)
	must(t, unix.Mkfifo(fx.host("workspace/p"), 0o644))
	stop := swapper(t, fx.host("workspace/a.txt"), fx.host("workspace/p"))
	defer stop()
	noBlock(t, "Open racing a named pipe", func() {
		for range 500 {
			f, _, err := Open(fx.root, "/workspace/a.txt")
			if err == nil {
				f.Close()
			} else if !errors.Is(err, ErrNotRegular) && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Open = %v", err)
				return
			}
		}
	})
}

// swapper exchanges a and b (atomically, renameat2 RENAME_EXCHANGE) over
// and over until stopped, as a session racing us would.
func swapper(t *testing.T, a, b string) (stop func()) {
	t.Helper()
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
		t.Skipf("RENAME_EXCHANGE is not supported here: %v", err)
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			default:
				unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

func TestWrite(t *testing.T) {
	fx := newFixture(t)
	outside := snapshot(t, fx.outside)

	must(t, Write(fx.root, "/workspace/new/deep/f.txt", strings.NewReader("data"), 0o600, 100))
	if got := fx.read(t, "workspace/new/deep/f.txt"); got != "data" {
		t.Errorf("written file holds %q", got)
	}
	for name, want := range map[string]fs.FileMode{"workspace/new/deep/f.txt": 0o600, "workspace/new": fs.ModeDir | 0o755, "workspace/new/deep": fs.ModeDir | 0o755} {
		if fi, err := os.Lstat(fx.host(name)); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v, want %v", name, fi.Mode(), err, want)
		}
	}

	must(t, Write(fx.root, "/workspace/dflt", strings.NewReader(""), 0, 100))
	if fi, err := os.Lstat(fx.host("workspace/dflt")); err != nil || fi.Mode() != 0o644 {
		t.Errorf("mode 0 gave %v, %v, want 0644", fi.Mode(), err)
	}

	// A hard link the session made to the target is not written through.
	must(t, os.Link(fx.host("workspace/a.txt"), fx.host("workspace/hl")))
	must(t, Write(fx.root, "/workspace/a.txt", strings.NewReader("new"), 0, 100))
	if a, hl := fx.read(t, "workspace/a.txt"), fx.read(t, "workspace/hl"); a != "new" || hl != "hello" {
		t.Errorf("after Write: a.txt %q, its old hard link %q, want new, hello", a, hl)
	}

	// A link at the target is replaced, not followed.
	must(t, Write(fx.root, "/workspace/passwd", strings.NewReader("mine"), 0, 100))
	if fi, err := os.Lstat(fx.host("workspace/passwd")); err != nil || !fi.Mode().IsRegular() || fx.read(t, "workspace/passwd") != "mine" {
		t.Errorf("Write over a link: %v, %v", fi, err)
	}
	noBlock(t, "Write over a named pipe", func() {
		must(t, Write(fx.root, "/workspace/fifo", strings.NewReader("x"), 0, 100))
	})

	tests := []struct {
		path string
		mode os.FileMode
		err  error
	}{
		{"/workspace/up/x", 0, ErrBadPath},
		{"/workspace/esc1/x", 0, ErrBadPath},
		{"/workspace/toroot/tmp/x", 0, ErrBadPath},
		{"/workspace/loop1/x", 0, ErrBadPath},
		{"/workspace/x", 0o4755, ErrBadPath},
		{"/workspace/x", fs.ModeDir | 0o755, ErrBadPath},
		{"/dev/shm/x", 0, ErrBadPath},
		{"/", 0, ErrBadPath},
		{"/workspace/sub/b.txt/x", 0, syscall.ENOTDIR},
		{"/workspace/sub/b.txt/x", 0, ErrBadPath},
		{"/workspace/sub", 0, syscall.EISDIR},
		{"/workspace/sub", 0, ErrBadPath},
	}
	for _, tt := range tests {
		if err := Write(fx.root, tt.path, strings.NewReader("x"), tt.mode, 100); !errors.Is(err, tt.err) {
			t.Errorf("Write(%q, %v) = %v, want %v", tt.path, tt.mode, err, tt.err)
		}
	}
	sameTree(t, "outside", outside, snapshot(t, fx.outside))
}

func TestWriteTooLarge(t *testing.T) {
	fx := newFixture(t)
	before := snapshot(t, fx.rootDir)
	err := Write(fx.root, "/workspace/a.txt", strings.NewReader("0123456789x"), 0, 10)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Write of 11 bytes with max 10 = %v, want ErrTooLarge", err)
	}
	// The target is untouched and the temporary file gone, so the tree is
	// as it was (but for the directory's time, which the temporary file
	// changed).
	after := snapshot(t, fx.rootDir)
	delete(before, "workspace")
	delete(after, "workspace")
	sameTree(t, "root", before, after)

	must(t, Write(fx.root, "/workspace/a.txt", strings.NewReader("0123456789"), 0, 10))
	if got := fx.read(t, "workspace/a.txt"); got != "0123456789" {
		t.Errorf("Write of exactly max bytes left %q", got)
	}
}

// TestWriteRace: the session swaps a directory on the way with a link
// out of the root while we write; nothing lands outside.
func TestWriteRace(t *testing.T) {
	fx := newFixture(t)
	outside := snapshot(t, fx.outside)
	must(t, os.Mkdir(fx.host("workspace/flip"), 0o755))
	must(t, os.Symlink("../../outside/tmp", fx.host("workspace/flop")))
	stop := swapper(t, fx.host("workspace/flip"), fx.host("workspace/flop"))
	for range 500 {
		err := Write(fx.root, "/workspace/flip/f", strings.NewReader("x"), 0, 10)
		if err != nil && !errors.Is(err, ErrBadPath) && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("Write = %v", err)
		}
	}
	stop()
	sameTree(t, "outside", outside, snapshot(t, fx.outside))
}
