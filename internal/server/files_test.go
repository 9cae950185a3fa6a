package server

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/client"
)

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	return buf.Bytes()
}

func TestFiles(t *testing.T) {
	a := newAPI(t, Options{MaxFileBytes: 1000})
	s := a.create(client.CreateRequest{})
	root := a.rt.Boxes()[0].RootDir()
	files := "/v1/sessions/" + s.ID + "/files"

	if status, b := a.do("PUT", files+"?path=/workspace/sub/a.txt&mode=0600", "hello"); status != http.StatusNoContent {
		t.Fatalf("put: %d %s", status, b)
	}
	if st, err := os.Stat(filepath.Join(root, "workspace/sub/a.txt")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the file put: %v, %v; want mode 0600", st, err)
	}
	resp := a.request(t.Context(), "GET", files+"?path=/workspace/sub/a.txt", nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "hello" || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("get: %d %q %s", resp.StatusCode, b, resp.Header.Get("Content-Type"))
	}

	status, b := a.do("GET", files+"/stat?path=/workspace/sub/a.txt", nil)
	var fi client.FileInfo
	if err := json.Unmarshal(b, &fi); status != 200 || err != nil || fi.Size != 5 || fi.Type != "file" || fi.Name != "a.txt" || fi.Mode != 0o600 {
		t.Errorf("stat: %d %s", status, b)
	}
	status, b = a.do("GET", files+"/list?path=/workspace/sub", nil)
	var dl client.DirList
	if err := json.Unmarshal(b, &dl); status != 200 || err != nil || len(dl.Entries) != 1 || dl.Entries[0].Name != "a.txt" {
		t.Errorf("list: %d %s", status, b)
	}

	a.wantError("PUT", files+"?path=/workspace/big", strings.Repeat("x", 1001), 413, "too_large")
	if _, err := os.Stat(filepath.Join(root, "workspace/big")); err == nil {
		t.Error("a file too large was written")
	}
	a.wantError("PUT", files+"?path=/workspace/x&mode=9", "x", 400, "bad_request")
	a.wantError("PUT", files+"?path=/workspace/x&mode=01777", "x", 400, "bad_request")
	a.wantError("PUT", files, "x", 400, "bad_request")
	a.wantError("PUT", files+"?path=workspace/x", "x", 400, "bad_request")
	a.wantError("GET", files+"?path=/workspace/nope", nil, 404, "not_found")
	a.wantError("GET", files+"?path=/workspace/sub", nil, 400, "bad_request")
	a.wantError("GET", files+"/stat?path=/workspace/nope", nil, 404, "not_found")
	a.wantError("GET", files+"/list?path=/workspace/sub/a.txt", nil, 400, "bad_request")
	a.wantError("GET", "/v1/sessions/s-aaaaaaaaaaaaaaaaaaaa/files?path=/a", nil, 404, "not_found")

	// A symbolic link out of the root leads nowhere outside it.
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o644)
	if err := os.Symlink(outside, filepath.Join(root, "workspace/out")); err != nil {
		t.Fatal(err)
	}
	if status, b := a.do("GET", files+"?path=/workspace/out", nil); status < 400 || strings.Contains(string(b), "secret\"") || string(b) == "secret" {
		t.Errorf("get through a link out: %d %s", status, b)
	}
	if status, b := a.do("GET", files+"?path=/../../../../"+outside, nil); string(b) == "secret" {
		t.Errorf("get with ..: %d %s", status, b)
	}
}

func TestArchive(t *testing.T) {
	a := newAPI(t, Options{})
	s := a.create(client.CreateRequest{})
	root := a.rt.Boxes()[0].RootDir()
	archive := "/v1/sessions/" + s.ID + "/archive"

	if status, b := a.do("PUT", archive+"?path=/workspace/proj", tarOf(t, map[string]string{"a.txt": "A", "src/b.go": "package b"})); status != http.StatusNoContent {
		t.Fatalf("put archive: %d %s", status, b)
	}
	if b, err := os.ReadFile(filepath.Join(root, "workspace/proj/src/b.go")); err != nil || string(b) != "package b" {
		t.Errorf("extracted: %q, %v", b, err)
	}

	// A bad entry refuses the whole archive: nothing of it is written.
	a.wantError("PUT", archive+"?path=/workspace/proj", tarOf(t, map[string]string{"ok.txt": "x", "../escape.txt": "x"}), 400, "bad_request")
	for _, p := range []string{"workspace/proj/ok.txt", "workspace/escape.txt"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s written from a refused archive", p)
		}
	}
	a.wantError("PUT", archive+"?path=/workspace/proj", "not a tar at all, not at all", 400, "bad_request")

	resp := a.request(t.Context(), "GET", archive+"?path=/workspace/proj", nil)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("get archive: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	tr := tar.NewReader(resp.Body)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, strings.TrimSuffix(h.Name, "/"))
	}
	slices.Sort(names)
	if want := []string{"a.txt", "src", "src/b.go"}; !slices.Equal(names, want) {
		t.Errorf("archive holds %v, want %v", names, want)
	}
	a.wantError("GET", archive+"?path=/workspace/proj/a.txt", nil, 400, "bad_request")
	a.wantError("GET", archive+"?path=/workspace/nope", nil, 404, "not_found")
}
