package canary

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zlibbed(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func deflated(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// readBody reads all of a Body, whole and through readers that return
// short reads, checks that the bytes come through unchanged and that every
// way of reading sees the same, and returns what was seen.
func readBody(t *testing.T, s *Scanner, body []byte, ce string) (Hit, bool) {
	t.Helper()
	wraps := []func(io.Reader) io.Reader{
		func(r io.Reader) io.Reader { return r },
		iotest.HalfReader,
		iotest.OneByteReader,
	}
	switch {
	case len(body) > 1<<20:
		wraps = wraps[:1]
	case len(body) > 64<<10:
		wraps = wraps[:2]
	}
	var h Hit
	var ok bool
	for i, wrap := range wraps {
		r, seen := s.Body(wrap(bytes.NewReader(body)), ce)
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading Body(%q): %v", ce, err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("Body(%q) yielded %d bytes that differ from the %d sent", ce, len(got), len(body))
		}
		h1, ok1 := seen()
		if h2, ok2 := seen(); h2 != h1 || ok2 != ok1 {
			t.Fatalf("Body(%q): seen() = %+v, %v, then %+v, %v", ce, h1, ok1, h2, ok2)
		}
		if i > 0 && (h1 != h || ok1 != ok) {
			t.Fatalf("Body(%q) read in pieces: seen() = %+v, %v; read whole: %+v, %v", ce, h1, ok1, h, ok)
		}
		h, ok = h1, ok1
	}
	return h, ok
}

func TestBody(t *testing.T) {
	s := newScanner(t, tokens...)
	creds := credentials(tokAWS, 5)
	b64 := []byte(base64.StdEncoding.EncodeToString(creds))
	r := rand.New(rand.NewPCG(15, 16))
	noise := randBytes(r, 100<<10)
	tests := []struct {
		name string
		body []byte
		ce   string
		want string // Encoding; "" for no hit
	}{
		{"plain", creds, "", "raw"},
		{"identity", creds, "identity", "raw"},
		{"form", []byte("a=1&key=A%4BIA7QX2M4ZKP3LB9TRW&b=2"), "", "url"},
		{"gzip", gzipped(creds), "gzip", "gzip"},
		{"GZIP", gzipped(creds), "GZIP", "gzip"},
		{"x-gzip", gzipped(creds), "x-gzip", "gzip"},
		{"gzip base64", gzipped(b64), "gzip", "gzip+base64"},
		{"gzip with text", gzipped(slices.Concat(text(t, 1<<20), creds, text(t, 1<<16))), "gzip", "gzip"},
		// Incompressible data goes into stored blocks: as it was.
		{"gzip stored", gzipped(slices.Concat(noise, creds, noise)), "gzip", "raw"},
		{"gzip two members", append(gzipped(noise), gzipped(creds)...), "gzip", "gzip"},
		{"deflate zlib", zlibbed(creds), "deflate", "deflate"},
		{"deflate raw", deflated(creds), "deflate", "deflate"},
		{"deflate then gzip", gzipped(zlibbed(b64)), "deflate, gzip", "gzip+deflate+base64"},
		{"identity, gzip", gzipped(creds), "identity, gzip", "gzip"},
		{"gzip not declared", gzipped(creds), "", "gzip"},
		{"zlib not declared", zlibbed(creds), "", "deflate"},
		{"gzip declared br", gzipped(creds), "br", "gzip"},
		{"br over gzip", gzipped(creds), "gzip, br", "gzip"},
		{"raw deflate not declared", deflated(creds), "", ""},
		{"gzip no token", gzipped(noise), "gzip", ""},
		{"corrupt gzip", append(gzipped(creds)[:30], noise[:100]...), "gzip", ""},
		{"not gzip", creds, "gzip", "raw"},
		{"gzip then garbage", append(gzipped(noise), creds...), "gzip", "raw"},
		{"empty", nil, "gzip", ""},
		{"one byte", []byte{0x1f}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok := readBody(t, s, tt.body, tt.ce)
			if got := map[bool]string{true: h.Encoding}[ok]; got != tt.want || ok && h.Token != tokAWS {
				t.Errorf("Body(%s, %q) seen %+v, %v; want %q", tt.name, tt.ce, h, ok, tt.want)
			}
		})
	}
}

// TestBodyBomb sends a body that inflates past the limit: decoding stops
// quietly, the body passes whole, and a token past the limit goes unseen.
func TestBodyBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("inflates 64 MiB")
	}
	s := newScanner(t, tokAWS)
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range maxDecoded>>20 + 1 {
		w.Write(zeros)
	}
	w.Write([]byte(tokAWS))
	w.Close()
	bomb := buf.Bytes()
	if h, ok := readBody(t, s, bomb, "gzip"); ok {
		t.Errorf("Body(bomb) seen %+v; want nothing past %d decoded bytes", h, maxDecoded)
	}
}

// TestBodySeenEarly asks before EOF.
func TestBodySeenEarly(t *testing.T) {
	s := newScanner(t, tokAWS)
	body := slices.Concat([]byte("x="+tokAWS+"&"), make([]byte, 1<<20))
	r, seen := s.Body(bytes.NewReader(body), "")
	if _, ok := seen(); ok {
		t.Fatal("seen() before any Read = true")
	}
	p := make([]byte, 100)
	if _, err := io.ReadFull(r, p); err != nil {
		t.Fatal(err)
	}
	if h, ok := seen(); !ok || h.Token != tokAWS {
		t.Errorf("seen() after the token was read = %+v, %v", h, ok)
	}
}

// TestBodyAbandoned drops a gzip body half read: its decoder must not stay
// behind. Goroutines are counted by their stacks, not in total: other
// tests' goroutines come and go meanwhile.
func TestBodyAbandoned(t *testing.T) {
	s := newScanner(t, tokAWS)
	func() {
		body := gzipped(randBytes(rand.New(rand.NewPCG(17, 18)), 1<<20))
		r, _ := s.Body(bytes.NewReader(body), "gzip")
		io.ReadFull(r, make([]byte, 1000))
		if decoders() == 0 {
			t.Errorf("no decoder goroutine while reading a gzip body")
		}
		runtime.KeepAlive(r)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for decoders() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d decoder goroutines after the body was dropped", decoders())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// decoders counts the goroutines running a body's decoder.
func decoders() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "canary.(*body)") && !strings.Contains(g, "canary.TestBody") {
			n++
		}
	}
	return n
}

// TestBodyReadError passes a read error through and ends decoding.
func TestBodyReadError(t *testing.T) {
	s := newScanner(t, tokAWS)
	body := gzipped(credentials(tokAWS, 0))
	r, seen := s.Body(io.MultiReader(bytes.NewReader(body[:20]), iotest.ErrReader(io.ErrUnexpectedEOF)), "gzip")
	if _, err := io.ReadAll(r); err != io.ErrUnexpectedEOF {
		t.Errorf("ReadAll error = %v, want %v", err, io.ErrUnexpectedEOF)
	}
	if h, ok := seen(); ok {
		t.Errorf("seen() = %+v after 20 bytes of gzip", h)
	}
}

func BenchmarkBody(b *testing.B) {
	s := newScanner(b, decoys...)
	data := text(b, 1<<20)
	for _, in := range []struct {
		name, ce string
		body     []byte
	}{
		{"plain", "", data},
		{"gzip", "gzip", gzipped(data)},
	} {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				r, seen := s.Body(bytes.NewReader(in.body), in.ce)
				io.Copy(io.Discard, r)
				if _, ok := seen(); ok {
					b.Fatal("hit")
				}
			}
		})
	}
}
