package files

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// entry is one tar entry for makeTar.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
	mtime            time.Time
}

func file(name, body string) entry {
	return entry{name: name, body: body, typ: tar.TypeReg, mode: 0o644}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777}
}
func other(name string, t byte) entry { return entry{name: name, typ: t, mode: 0o644} }

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: e.mtime}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawHeader is a ustar header block made by hand, for what tar.Writer
// will not write.
func rawHeader(name string, typ byte, size int) []byte {
	magic := "ustar\x0000"
	if typ == 'S' {
		magic = "ustar  \x00" // GNU's, which sparse entries need
	}
	b := make([]byte, 512)
	copy(b[0:], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	copy(b[257:], magic)
	copy(b[148:], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func block(data string) []byte {
	b := make([]byte, (len(data)+511)/512*512)
	copy(b, data)
	return b
}

// spoolDir is a host directory for ExtractTar's temporary file, checked
// empty when the test ends.
func spoolDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	t.Cleanup(func() {
		if names, _ := os.ReadDir(d); len(names) != 0 {
			t.Errorf("the spool directory holds %v", names)
		}
	})
	return d
}

// TestExtractTarRefused: each bad archive is refused with the error its
// entry deserves, and nothing anywhere changes: not the session's tree
// (not even a directory's time), not what is outside it.
func TestExtractTarRefused(t *testing.T) {
	good := []entry{file("good.txt", "good"), dir("gooddir/"), file("gooddir/f", "f")}
	// pax is an archive of one entry, name with body, after a PAX header
	// of records.
	pax := func(name, body string, records ...string) []byte {
		var recs string
		for _, r := range records {
			// A record's length counts its own digits.
			rec := fmt.Sprintf(" %s\n", r)
			n := len(rec) + len(fmt.Sprint(len(rec)))
			n = len(rec) + len(fmt.Sprint(n))
			recs += fmt.Sprintf("%d%s", n, rec)
		}
		var b []byte
		b = append(b, rawHeader("PaxHeaders/x", 'x', len(recs))...)
		b = append(b, block(recs)...)
		b = append(b, rawHeader(name, '0', len(body))...)
		b = append(b, block(body)...)
		return append(b, make([]byte, 1024)...)
	}
	tests := []struct {
		name  string
		dst   string // default /workspace/dst
		tar   []byte
		max   int64 // default 1 MiB
		err   error
		words string // in the error
	}{
		{name: "absolute", tar: makeTar(t, append(good, file("/etc/evil", "x"))...), err: ErrBadPath, words: `"/etc/evil": absolute`},
		{name: "dotdot", tar: makeTar(t, append(good, file("../evil", "x"))...), err: ErrBadPath, words: `"../evil"`},
		{name: "dotdot after cleaning", tar: makeTar(t, append(good, file("a/../../evil", "x"))...), err: ErrBadPath, words: `"a/../../evil"`},
		{name: "bare dotdot dir", tar: makeTar(t, append(good, dir("../"))...), err: ErrBadPath, words: `"../"`},
		{name: "NUL in a PAX name", tar: pax("x", "", "path=a\x00b"), err: ErrBadPath, words: "reading the archive"},
		// 10 MB of holes in a 2 KB archive: counted at its full size.
		{name: "sparse beyond max", tar: pax("GNUSparseFile.0/big", string(block("1\n0\n0\n")), "GNU.sparse.major=1", "GNU.sparse.minor=0", "GNU.sparse.name=big", "GNU.sparse.realsize=10000000"), err: ErrTooLarge, words: `"big": the files sum to more than`},
		{name: "hard link", tar: makeTar(t, append(good, entry{name: "hl", link: "good.txt", typ: tar.TypeLink})...), err: ErrBadPath, words: `"hl": hard links`},
		{name: "char device", tar: makeTar(t, append(good, other("null", tar.TypeChar))...), err: ErrBadPath, words: `"null": device`},
		{name: "block device", tar: makeTar(t, append(good, other("sda", tar.TypeBlock))...), err: ErrBadPath, words: `"sda": device`},
		{name: "fifo", tar: makeTar(t, append(good, other("p", tar.TypeFifo))...), err: ErrBadPath, words: `"p": named pipes`},
		{name: "sparse", tar: append(rawHeader("sp", 'S', 0), make([]byte, 1024)...), err: ErrBadPath, words: `"sp"`},
		{name: "unknown type", tar: append(rawHeader("zz", 'Z', 0), make([]byte, 1024)...), err: ErrBadPath, words: `"zz"`},
		{name: "link to absolute", tar: makeTar(t, append(good, symlink("l", "/etc"))...), err: ErrBadPath, words: `"l": symbolic link to the absolute path`},
		{name: "link out", tar: makeTar(t, append(good, symlink("l", "../x"))...), err: ErrBadPath, words: `"l": symbolic link to "../x"`},
		{name: "deep link out", tar: makeTar(t, append(good, symlink("a/b/l", "../../../x"))...), err: ErrBadPath, words: `"a/b/l"`},
		{name: "link out through a link", tar: makeTar(t, append(good, symlink("s", "."), symlink("l", "s/../x"))...), err: ErrBadPath, words: `"l": symbolic link to "s/../x", which goes through`},
		{name: "link out through a later link", tar: makeTar(t, append(good, symlink("l", "s/../x"), symlink("s", "."))...), err: ErrBadPath, words: `"l"`},
		{name: "empty link", tar: makeTar(t, append(good, symlink("l", ""))...), err: ErrBadPath, words: `"l"`},
		{name: "entry through a link", tar: makeTar(t, append(good, symlink("s", "gooddir"), file("s/f", "x"))...), err: ErrBadPath, words: `"s/f": "s" is a symbolic link`},
		{name: "link over a directory with entries", tar: makeTar(t, append(good, symlink("gooddir", "."))...), err: ErrBadPath, words: `"gooddir": it would replace a directory`},
		{name: "entry under a file", tar: makeTar(t, append(good, file("good.txt/x", "x"))...), err: ErrBadPath, words: `"good.txt/x": "good.txt" is a file`},
		{name: "directory over a file", tar: makeTar(t, append(good, dir("good.txt/"))...), err: ErrBadPath, words: `"good.txt/": it would replace a non-directory`},
		{name: "file over the directory itself", tar: makeTar(t, append(good, file(".", "x"))...), err: ErrBadPath, words: `"."`},
		{name: "existing file in the way", dst: "/workspace", tar: makeTar(t, append(good, file("a.txt/inner", "x"))...), err: ErrBadPath, words: `"a.txt": /workspace/a.txt exists and is not a directory`},
		{name: "existing directory in the way", dst: "/workspace", tar: makeTar(t, append(good, file("sub", "x"))...), err: ErrBadPath, words: `"sub": /workspace/sub exists and is a directory`},
		{name: "existing link out", dst: "/workspace", tar: makeTar(t, append(good, file("up/x", "x"))...), err: ErrBadPath, words: `"up": a symbolic link leads out`},
		{name: "existing link to /", dst: "/workspace", tar: makeTar(t, append(good, file("toroot/tmp/x", "x"))...), err: ErrBadPath, words: `"toroot": a symbolic link leads out`},
		{name: "existing link loop", dst: "/workspace", tar: makeTar(t, append(good, file("loop1/x", "x"))...), err: ErrBadPath, words: `"loop1"`},
		{name: "into a link out", dst: "/workspace/up/tmp", tar: makeTar(t, good...), err: ErrBadPath, words: "leads out"},
		{name: "into a file", dst: "/workspace/a.txt", tar: makeTar(t, good...), err: ErrBadPath, words: "not a directory"},
		{name: "into /dev", dst: "/dev/shm", tar: makeTar(t, good...), err: ErrBadPath, words: "/dev"},
		{name: "into /", dst: "/", tar: makeTar(t, good...), err: ErrBadPath, words: "root directory"},
		{name: "too deep", tar: makeTar(t, append(good, file(strings.Repeat("d/", maxDepth)+"f", "x"))...), err: ErrBadPath, words: "more than 256 directories deep"},
		{name: "larger than max", tar: makeTar(t, append(good, file("big", strings.Repeat("x", 8192)))...), max: 4096, err: ErrTooLarge, words: "larger than 4096 bytes"},
		{name: "not a tar", tar: bytes.Repeat([]byte("garbage!"), 200), err: ErrBadPath, words: "reading the archive"},
		{name: "truncated", tar: makeTar(t, append(good, file("big", strings.Repeat("x", 4096)))...)[:3000], err: ErrBadPath, words: "reading the archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			before, outside := snapshot(t, fx.rootDir), snapshot(t, fx.outside)
			dst, max := tt.dst, tt.max
			if dst == "" {
				dst = "/workspace/dst"
			}
			if max == 0 {
				max = 1 << 20
			}
			err := ExtractTar(fx.root, dst, bytes.NewReader(tt.tar), max, spoolDir(t))
			if !errors.Is(err, tt.err) || !strings.Contains(fmt.Sprint(err), tt.words) {
				t.Errorf("ExtractTar = %v, want %v saying %s", err, tt.err, tt.words)
			}
			sameTree(t, "root", before, snapshot(t, fx.rootDir))
			sameTree(t, "outside", outside, snapshot(t, fx.outside))
		})
	}
}

func TestExtractTarTooManyEntries(t *testing.T) {
	defer func(n int) { maxEntries = n }(maxEntries)
	maxEntries = 3
	fx := newFixture(t)
	before := snapshot(t, fx.rootDir)
	tarball := makeTar(t, file("1", ""), file("2", ""), file("3", ""), file("4", ""))
	if err := ExtractTar(fx.root, "/workspace/dst", bytes.NewReader(tarball), 1<<20, spoolDir(t)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ExtractTar of 4 entries with a limit of 3 = %v, want ErrTooLarge", err)
	}
	sameTree(t, "root", before, snapshot(t, fx.rootDir))
	if err := ExtractTar(fx.root, "/workspace/dst", bytes.NewReader(makeTar(t, file("1", ""), file("2", ""), file("3", ""))), 1<<20, spoolDir(t)); err != nil {
		t.Errorf("ExtractTar of 3 entries with a limit of 3 = %v", err)
	}
}

func TestExtractTar(t *testing.T) {
	fx := newFixture(t)
	outside := snapshot(t, fx.outside)
	must(t, os.Link(fx.host("workspace/a.txt"), fx.host("workspace/hl")))
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	with := func(e entry, mode int64) entry { e.mode, e.mtime = mode, mtime; return e }
	tarball := makeTar(t,
		with(dir("./"), 0o750),
		with(file("plain", "plain"), 0o600),
		with(file("exec", "#!/bin/sh"), 0o755),
		with(file("setuid", "s"), 0o4755),
		with(file("nomode", "n"), 0),
		with(dir("private/"), 0o700),
		with(file("private/deep/f", "deep"), 0o644),
		with(dir("nomodedir/"), 0),
		with(symlink("private/link", "deep/f"), 0o777),
		with(symlink("private/up", ".."), 0o777),
		with(file("dup", "first"), 0o644),
		with(file("dup", "second"), 0o644),
		with(file("./a/../b", "cleaned"), 0o644),
	)
	spool := spoolDir(t)
	must(t, ExtractTar(fx.root, "/workspace/new/dst", bytes.NewReader(tarball), 1<<20, spool))
	want := map[string]string{
		"":               "drwxr-x---",
		"plain":          "-rw------- plain",
		"exec":           "-rwxr-xr-x #!/bin/sh",
		"setuid":         "-rwxr-xr-x s",
		"nomode":         "-rw-r--r-- n",
		"private":        "drwx------",
		"private/deep":   "drwxr-xr-x",
		"private/deep/f": "-rw-r--r-- deep",
		"private/link":   "Lrwxrwxrwx -> deep/f",
		"nomodedir":      "drwxr-xr-x",
		"private/up":     "Lrwxrwxrwx -> ..",
		"dup":            "-rw-r--r-- second",
		"b":              "-rw-r--r-- cleaned",
	}
	got := snapshot(t, fx.host("workspace/new/dst"))
	for name, w := range want {
		g := got[filepath.FromSlash(name)]
		if name == "" {
			g = got["."]
		}
		mode, rest, _ := strings.Cut(g, " ")
		_, content, _ := strings.Cut(rest, " ")
		if strings.TrimSpace(mode+" "+content) != w {
			t.Errorf("%s: %q, want %q", name, mode+" "+content, w)
		}
		if !strings.Contains(g, fmt.Sprint(mtime.UnixNano())) && name != "private/deep" {
			t.Errorf("%s: %q, want the modification time %v", name, g, mtime)
		}
	}
	if len(got) != len(want) {
		t.Errorf("extracted %d entries, want %d: %v", len(got), len(want), got)
	}
	if fi, err := os.Stat(fx.host("workspace/new")); err != nil || fi.Mode() != fs.ModeDir|0o755 {
		t.Errorf("missing parent made with %v, %v, want 0755", fi.Mode(), err)
	}

	// Into an existing directory: entries replace files and links (not
	// written through a hard link), and a link of the session's inside the
	// root is followed.
	must(t, ExtractTar(fx.root, "/workspace", bytes.NewReader(makeTar(t,
		file("a.txt", "replaced"),
		file("passwd", "no longer a link"),
		file("datalink/added", "through the session's link"),
	)), 1<<20, spool))
	if a, hl := fx.read(t, "workspace/a.txt"), fx.read(t, "workspace/hl"); a != "replaced" || hl != "hello" {
		t.Errorf("a.txt %q, its hard link %q, want replaced, hello", a, hl)
	}
	if fi, err := os.Lstat(fx.host("workspace/passwd")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("passwd: %v, %v, want a regular file", fi, err)
	}
	if got := fx.read(t, "data/added"); got != "through the session's link" {
		t.Errorf("data/added: %q", got)
	}
	sameTree(t, "outside", outside, snapshot(t, fx.outside))
}

// TestTarRoundTrip: WriteTar then ExtractTar elsewhere gives the same
// files, modes, links and times; what cannot be carried (a named pipe)
// is left out.
func TestTarRoundTrip(t *testing.T) {
	fx := newFixture(t)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	src := "workspace/proj"
	fx.write(t, src+"/main.go", "package main")
	fx.write(t, src+"/run.sh", "#!/bin/sh")
	must(t, os.Chmod(fx.host(src+"/run.sh"), 0o755))
	fx.write(t, src+"/secret", "s")
	must(t, os.Chmod(fx.host(src+"/secret"), 0o600))
	fx.write(t, src+"/deep/er/f", strings.Repeat("x", 100_000))
	must(t, os.Mkdir(fx.host(src+"/empty"), 0o700))
	fx.symlink(t, "deep/er/f", src+"/link")
	fx.symlink(t, "missing", src+"/dangling")
	must(t, os.Link(fx.host(src+"/main.go"), fx.host(src+"/hardlink")))
	must(t, unix.Mkfifo(fx.host(src+"/fifo"), 0o644))
	// Times last, deepest first, links not followed.
	for _, name := range []string{"deep/er/f", "deep/er", "deep", "main.go", "run.sh", "secret", "empty", "link", "dangling", "fifo"} {
		must(t, unix.UtimesNanoAt(unix.AT_FDCWD, fx.host(src+"/"+name), []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}, unix.AT_SYMLINK_NOFOLLOW))
	}

	var buf bytes.Buffer
	noBlock(t, "WriteTar", func() { must(t, WriteTar(fx.root, "/"+src, &buf)) })

	other := t.TempDir()
	root2, err := os.OpenRoot(other)
	must(t, err)
	defer root2.Close()
	must(t, ExtractTar(root2, "/dst", bytes.NewReader(buf.Bytes()), 1<<20, spoolDir(t)))

	want := snapshot(t, fx.host(src))
	delete(want, ".")    // the directory itself is not in the archive
	delete(want, "fifo") // nor what a tar of ours cannot carry
	got := snapshot(t, filepath.Join(other, "dst"))
	delete(got, ".")
	sameTree(t, "round trip", want, got)
}

// TestWriteTarDoesNotFollow: links are archived as links, never
// followed, whatever they point at; nothing outside the root is read.
func TestWriteTarDoesNotFollow(t *testing.T) {
	fx := newFixture(t)
	var buf bytes.Buffer
	noBlock(t, "WriteTar", func() { must(t, WriteTar(fx.root, "/workspace", &buf)) })
	if bytes.Contains(buf.Bytes(), []byte("outside secret")) {
		t.Error("the archive holds a file from outside the root")
	}
	got := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		got[hdr.Name] = fmt.Sprintf("%c %s", hdr.Typeflag, hdr.Linkname)
	}
	want := map[string]string{
		"a.txt": "0 ", "sub/": "5 ", "sub/b.txt": "0 ",
		"toroot": "2 /", "passwd": "2 /etc/passwd", "up": "2 ../../outside", "datalink": "2 ../data",
		"chain1": "2 chain2", "chain2": "2 chain3", "chain3": "2 a.txt",
		"dchain1": "2 dchain2", "dchain2": "2 sub", "esc1": "2 esc2", "esc2": "2 ../../../outside",
		"loop1": "2 loop2", "loop2": "2 loop1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("entry %q: %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("archive has %v, want %v", got, want)
	}

	// The directory asked for may be a link inside the root; not one out.
	buf.Reset()
	must(t, WriteTar(fx.root, "/workspace/datalink", &buf))
	if !bytes.Contains(buf.Bytes(), []byte("inner")) {
		t.Error("WriteTar through a link inside the root left out its target's files")
	}
	for _, p := range []string{"/workspace/toroot", "/workspace/up", "/workspace/esc1", "/proc", "workspace"} {
		if err := WriteTar(fx.root, p, io.Discard); !errors.Is(err, ErrBadPath) {
			t.Errorf("WriteTar(%q) = %v, want ErrBadPath", p, err)
		}
	}
	if err := WriteTar(fx.root, "/workspace/fifo", io.Discard); err == nil {
		t.Error("WriteTar of a named pipe succeeded")
	}
}

func TestWriteTarOfRootLeavesOutKernelDirs(t *testing.T) {
	fx := newFixture(t)
	fx.write(t, "proc/1/environ", "x")
	fx.write(t, "dev/sda", "x")
	fx.write(t, "sys/kernel/x", "x")
	var buf bytes.Buffer
	must(t, WriteTar(fx.root, "/", &buf))
	tr := tar.NewReader(&buf)
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		n++
		for _, h := range []string{"proc", "dev", "sys"} {
			if hdr.Name == h+"/" || strings.HasPrefix(hdr.Name, h+"/") {
				t.Errorf("archive of / holds %q", hdr.Name)
			}
		}
	}
	if n == 0 {
		t.Error("archive of / is empty")
	}
}

// FuzzExtractTar: whatever the archive, nothing is made outside the
// directory the root is opened on, and the spool is left empty.
func FuzzExtractTar(f *testing.F) {
	f.Add(makeTar(f, file("a", "a"), dir("d/"), file("d/b", "b"), symlink("d/l", "../a")))
	f.Add(makeTar(f, file("../x", "x")))
	f.Add(makeTar(f, symlink("s", "."), file("s/x", "x")))
	f.Add(makeTar(f, symlink("up", "../../outside"), file("up/x", "x")))
	f.Add(makeTar(f, entry{name: "hl", link: "/etc/passwd", typ: tar.TypeLink}))
	f.Add(makeTar(f, file("esc/x", "x")))
	f.Fuzz(func(t *testing.T, archive []byte) {
		dir := t.TempDir()
		rootDir := filepath.Join(dir, "root")
		outside := filepath.Join(dir, "outside")
		spool := filepath.Join(dir, "spool")
		for _, d := range []string{filepath.Join(rootDir, "workspace", "x"), outside, spool} {
			must(t, os.MkdirAll(d, 0o755))
		}
		must(t, os.Symlink("../../../outside", filepath.Join(rootDir, "workspace", "x", "esc")))
		root, err := os.OpenRoot(rootDir)
		must(t, err)
		defer root.Close()
		ExtractTar(root, "/workspace/x", bytes.NewReader(archive), 1<<16, spool)
		for _, d := range []string{outside, spool} {
			if names, _ := os.ReadDir(d); len(names) != 0 {
				t.Fatalf("%s holds %v after ExtractTar", d, names)
			}
		}
		if names, _ := os.ReadDir(dir); len(names) != 3 {
			t.Fatalf("%s holds %v after ExtractTar", dir, names)
		}
	})
}
