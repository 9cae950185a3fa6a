package canary

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestStreamSplit writes each encoding of a credentials file in two pieces,
// split at every point, and byte by byte.
func TestStreamSplit(t *testing.T) {
	s := newScanner(t, tokens...)
	for _, e := range encodings {
		for _, tok := range []string{tokAWS, tokB64} {
			for off := range 3 {
				data := e.encode(credentials(tok, off))
				for i := range len(data) + 1 {
					st := s.NewStream()
					h1, ok1 := st.Write(data[:i])
					h2, ok2 := st.Write(data[i:])
					if !ok2 || h2.Token != tok || !slices.Contains(e.want, h2.Encoding) {
						t.Fatalf("%s: Write(%q), Write(%q) = %+v, %v; want %s in one of %q", e.name, data[:i], data[i:], h2, ok2, tok, e.want)
					}
					if ok1 && h1 != h2 {
						t.Fatalf("%s: first Write found %+v, second %+v; want the same", e.name, h1, h2)
					}
				}
				st := s.NewStream()
				var h Hit
				var ok bool
				for i := range data {
					h, ok = st.Write(data[i : i+1])
				}
				if !ok || h.Token != tok {
					t.Errorf("%s: byte by byte = %+v, %v; want %s", e.name, h, ok, tok)
				}
			}
		}
	}
}

// TestStreamSticky checks that a hit stays found, and that a Stream with
// nothing found keeps finding nothing in data without tokens.
func TestStreamSticky(t *testing.T) {
	s := newScanner(t, tokAWS)
	st := s.NewStream()
	if h, ok := st.Write([]byte("hello ")); ok {
		t.Fatalf("Write(hello) = %+v, true", h)
	}
	want := Hit{Token: tokAWS, Encoding: "url"}
	if h, ok := st.Write([]byte("k=A%4BIA7QX2M4ZKP3LB9TRW")); !ok || h != want {
		t.Fatalf("Write(token) = %+v, %v; want %+v", h, ok, want)
	}
	if h, ok := st.Write([]byte("nothing")); !ok || h != want {
		t.Errorf("Write after hit = %+v, %v; want %+v", h, ok, want)
	}
}

// TestStreamEscapeAcrossWrites splits a percent escape, and the label's
// evidence, across writes.
func TestStreamEscapeAcrossWrites(t *testing.T) {
	s := newScanner(t, tokAWS)
	tests := []struct {
		writes []string
		want   string // Encoding; "" for no hit
	}{
		{[]string{"A%", "4BIA7QX2M4ZKP3LB9TRW"}, "url"},
		{[]string{"A%4", "BIA7QX2M4ZKP3LB9TRW"}, "url"},
		{[]string{"A", "%", "4", "B", "IA7QX2M4ZKP3LB9TRW"}, "url"},
		{[]string{"A%4BIA7QX2M4ZKP3L", "", "B9TRW"}, "url"},
		{[]string{"A%4B", escapes40(), "AKIA7QX2M4ZKP3LB9TR", "W"}, "raw"},
		{[]string{escapes40(), "123456AKIA7QX2M4\n", "ZKP3LB9TRW"}, "raw"},
		{[]string{"AKIA7QX2M4ZKP3LB9TR%", "57"}, "url"},
		{[]string{"AKIA7QX2M4ZKP3LB9TR%", "5"}, ""},
		{[]string{"AKIA7QX2M4ZKP3LB9TR%", "5x"}, ""},
		{[]string{"AKIA7QX2M4\r", "\nZKP3LB9TRW"}, ""},
		{[]string{"123456AKIA7QX2M4\r", "\nZKP3LB9TRW"}, "raw"},
		{[]string{"123", "456AKIA7", "QX2M4", "\r", "\n", "\n", "ZKP3LB9TRW"}, "raw"},
		{[]string{"AKIA7QX2M4%0", "D%0AZKP3LB9TRW"}, "raw"},
		{[]string{"AKIA7QX2M4\\", "nZKP3LB9TRW"}, ""},
		{[]string{"123456AKIA7QX2M4\\", "nZKP3LB9TRW"}, "raw"},
		{[]string{"AKIA7QX2M4\\", "\\nZKP3LB9TRW"}, ""},
		{[]string{"AKIA7QX2M4\\", "xZKP3LB9TRW"}, ""},
	}
	for _, tt := range tests {
		st := s.NewStream()
		var h Hit
		var ok bool
		for _, w := range tt.writes {
			h, ok = st.Write([]byte(w))
		}
		if got := map[bool]string{true: h.Encoding}[ok]; got != tt.want {
			t.Errorf("Write(%q...) = %+v, %v; want %q", tt.writes, h, ok, tt.want)
		}
	}
}

func escapes40() string { return string(bytes.Repeat([]byte("%41"), 40)) }

// chunked writes data to a new Stream in pieces whose sizes come from
// sizes, cyclically, each byte plus one.
func chunked(s *Scanner, data, sizes []byte) (Hit, bool) {
	st := s.NewStream()
	var h Hit
	var ok bool
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(sizes) > 0 {
			n = min(n, int(sizes[i%len(sizes)])+1)
		}
		h, ok = st.Write(data[:n])
		data = data[n:]
	}
	return h, ok
}

// FuzzStreamSplit embeds a token in fuzzed bytes, encodes the whole with a
// fuzz-chosen encoding, and writes it in fuzz-chosen pieces: the token must
// be found, and named.
func FuzzStreamSplit(f *testing.F) {
	s := newScanner(f, tokens...)
	f.Add([]byte("[default]\naws_access_key_id = \n"), uint8(0), uint8(0), uint16(30), []byte{7})
	f.Add([]byte("some text %41 with escapes\r\n"), uint8(2), uint8(16), uint16(5), []byte{0, 1, 2})
	f.Add(bytes.Repeat([]byte{0xff}, 100), uint8(1), uint8(7), uint16(50), []byte{255, 3})
	f.Fuzz(func(t *testing.T, around []byte, tokIdx, encIdx uint8, at uint16, sizes []byte) {
		tok := tokens[int(tokIdx)%len(tokens)]
		e := encodings[int(encIdx)%len(encodings)]
		at = at % uint16(len(around)+1)
		data := e.encode(slices.Concat(around[:at], []byte(tok), around[at:]))
		h, ok := chunked(s, data, sizes)
		if !ok || h.Token != tok {
			t.Fatalf("%s of %q with %q written in pieces %v = %+v, %v; want %s", e.name, around, tok, sizes, h, ok, tok)
		}
	})
}

// TestStreamAgreesWithScan: a Stream written in pieces finds a token in
// exactly the data Scan finds one in.
func TestStreamAgreesWithScan(t *testing.T) {
	s := newScanner(t, tokens...)
	r := rand.New(rand.NewPCG(5, 6))
	alphabet := []byte("AKIA7QX2M4ZKP3LB9TRW%0aA\r\n4b")
	for range 20000 {
		data := make([]byte, r.IntN(60))
		for i := range data {
			data[i] = alphabet[r.IntN(len(alphabet))]
		}
		if r.IntN(2) == 0 {
			data = slices.Concat(data[:len(data)/2], percentSome(r.Uint64(), r.IntN(2) == 0)([]byte(tokAWS)), data[len(data)/2:])
		}
		sizes := randBytes(r, 1+r.IntN(4))
		for i := range sizes {
			sizes[i] %= 8
		}
		_, want := s.Scan(data)
		if _, got := chunked(s, data, sizes); got != want {
			t.Fatalf("Stream(%q in pieces %v) found = %v, Scan found = %v", data, sizes, got, want)
		}
	}
}

func BenchmarkStream(b *testing.B) {
	s := newScanner(b, decoys...)
	r := rand.New(rand.NewPCG(7, 8))
	for _, in := range []struct {
		name string
		data []byte
	}{
		{"random", randBytes(r, 1<<20)},
		{"text", text(b, 1<<20)},
		{"base64", []byte(base64.StdEncoding.EncodeToString(randBytes(r, 3<<18)))},
	} {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			for b.Loop() {
				st := s.NewStream()
				for p := in.data; len(p) > 0; p = p[min(len(p), 16<<10):] {
					if _, ok := st.Write(p[:min(len(p), 16<<10)]); ok {
						b.Fatal("hit")
					}
				}
			}
		})
	}
}
