package canary

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"go/build"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The tokens are shaped like the decoys': an AWS key id, a GitHub token, a
// run of base64 (with + and /, which URLs escape), and the shortest allowed.
var (
	tokAWS    = "AKIA7QX2M4ZKP3LB9TRW"
	tokGitHub = "ghp_" + "r8Xq2LmZ0vK7tBc4NwPe9Hs1YdFa6JuQ3iOg"
	tokB64    = "q3Zx9+Lm/Tp0aBcDeFgH1jK/"
	tokShort  = "k9Fq2LxZ7wPe"
	tokens    = []string{tokAWS, tokGitHub, tokB64, tokShort}
	decoys    = []string{tokAWS, tokGitHub, tokB64}
)

func newScanner(t testing.TB, tokens ...string) *Scanner {
	t.Helper()
	s, err := New(tokens)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// credentials returns an ~/.aws/credentials file with tok as its key id,
// after off bytes of something else, so that tok falls at every alignment
// of the encodings as off goes from 0 to 7.
func credentials(tok string, off int) []byte {
	return []byte(strings.Repeat("#", off) + "[default]\n" +
		"aws_access_key_id = " + tok + "\n" +
		"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n" +
		"region = eu-west-1\n")
}

// An encoding spells a whole text, the way a program would before sending
// it; want lists the Encodings a Hit may name (a spelling shared by two
// encodings is named after the first found).
type encoding struct {
	name   string
	encode func(b []byte) []byte
	want   []string
}

var encodings = []encoding{
	{"raw", func(b []byte) []byte { return b }, []string{"raw"}},
	{"hex", func(b []byte) []byte { return []byte(hex.EncodeToString(b)) }, []string{"hex"}},
	{"HEX", func(b []byte) []byte { return bytes.ToUpper([]byte(hex.EncodeToString(b))) }, []string{"hex"}},
	{"base64", enc64(base64.StdEncoding), []string{"base64"}},
	{"base64 raw", enc64(base64.RawStdEncoding), []string{"base64"}},
	{"base64url", enc64(base64.URLEncoding), []string{"base64url", "base64"}},
	{"base64url raw", enc64(base64.RawURLEncoding), []string{"base64url", "base64"}},
	{"base64 wrapped", wrap(enc64(base64.StdEncoding), 76, "\n"), []string{"base64"}},
	{"base64 wrapped crlf", wrap(enc64(base64.StdEncoding), 64, "\r\n"), []string{"base64"}},
	{"base32", enc32(base32.StdEncoding), []string{"base32"}},
	{"base32 lower", lowered(enc32(base32.StdEncoding)), []string{"base32"}},
	{"base32 raw", enc32(base32.StdEncoding.WithPadding(base32.NoPadding)), []string{"base32"}},
	{"base32hex", enc32(base32.HexEncoding), []string{"base32hex"}},
	{"base32hex lower", lowered(enc32(base32.HexEncoding)), []string{"base32hex"}},
	{"url query", func(b []byte) []byte { return []byte(url.QueryEscape(string(b))) }, []string{"raw", "url"}},
	{"url full", percentAll, []string{"url"}},
	{"url partial", percentSome(0xa5, false), []string{"url", "raw"}},
	{"url partial lower", percentSome(0x5a, true), []string{"url", "raw"}},
	{"url base64", func(b []byte) []byte { return []byte(url.QueryEscape(base64.StdEncoding.EncodeToString(b))) }, []string{"base64", "url+base64"}},
	{"json base64 wrapped", func(b []byte) []byte {
		j, _ := json.Marshal(string(wrap(enc64(base64.StdEncoding), 76, "\n")(b)))
		return j
	}, []string{"base64"}},
	{"json escaped slashes", func(b []byte) []byte {
		return bytes.ReplaceAll(enc64(base64.StdEncoding)(b), []byte("/"), []byte(`\/`))
	}, []string{"base64"}},
	{"url base64 wrapped", func(b []byte) []byte {
		return []byte(url.QueryEscape(string(wrap(enc64(base64.StdEncoding), 76, "\n")(b))))
	}, []string{"base64", "url+base64"}},
}

func enc64(e *base64.Encoding) func([]byte) []byte {
	return func(b []byte) []byte { return []byte(e.EncodeToString(b)) }
}

func enc32(e *base32.Encoding) func([]byte) []byte {
	return func(b []byte) []byte { return []byte(e.EncodeToString(b)) }
}

func lowered(f func([]byte) []byte) func([]byte) []byte {
	return func(b []byte) []byte { return bytes.ToLower(f(b)) }
}

// wrap breaks what f returns into lines of n characters.
func wrap(f func([]byte) []byte, n int, nl string) func([]byte) []byte {
	return func(b []byte) []byte {
		e := f(b)
		var out []byte
		for len(e) > n {
			out = append(append(out, e[:n]...), nl...)
			e = e[n:]
		}
		return append(out, e...)
	}
}

func percentAll(b []byte) []byte {
	var out []byte
	for _, c := range b {
		out = append(out, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&15])
	}
	return out
}

// percentSome escapes the bytes whose index's bit in mask (taken cyclically)
// is set, and always those a URL must escape; with lower, in lower case.
func percentSome(mask uint64, lower bool) func([]byte) []byte {
	return func(b []byte) []byte {
		var out []byte
		for i, c := range b {
			if mask>>(i%64)&1 != 0 || c == '%' || c == '\\' || c <= ' ' || c >= 0x7f {
				e := percentAll([]byte{c})
				if lower {
					e = bytes.ToLower(e)
				}
				out = append(out, e...)
			} else {
				out = append(out, c)
			}
		}
		return out
	}
}

// TestScanEncodings finds each token in each encoding of a credentials file
// holding it, at every alignment.
func TestScanEncodings(t *testing.T) {
	s := newScanner(t, tokens...)
	for _, e := range encodings {
		for _, tok := range tokens {
			for off := range 8 {
				data := e.encode(credentials(tok, off))
				h, ok := s.Scan(data)
				if !ok || h.Token != tok || !slices.Contains(e.want, h.Encoding) {
					t.Errorf("%s: Scan(%q) = %+v, %v; want %s in one of %q", e.name, data, h, ok, tok, e.want)
				}
			}
		}
	}
}

// TestScanRandomContext embeds each token at offsets 0 to 7 of random
// binary data before encoding it.
func TestScanRandomContext(t *testing.T) {
	s := newScanner(t, tokens...)
	r := rand.New(rand.NewPCG(1, 2))
	for _, e := range encodings {
		for _, tok := range tokens {
			for off := range 8 {
				data := slices.Concat(randBytes(r, off), []byte(tok), randBytes(r, r.IntN(40)))
				enc := e.encode(data)
				if h, ok := s.Scan(enc); !ok || h.Token != tok {
					t.Errorf("%s: Scan(%q) = %+v, %v; want %s", e.name, enc, h, ok, tok)
				}
			}
		}
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestScanPercent(t *testing.T) {
	s := newScanner(t, tokAWS, tokB64)
	tests := []struct {
		in   string
		want string // Encoding; "" for no hit
	}{
		{"https://x.example/?k=AKIA7QX2M4ZKP3LB9TRW", "raw"},
		{"https://x.example/?k=A%4BIA7QX2M4ZKP3LB9TRW", "url"},
		{"https://x.example/?k=A%4bIA7QX2M4ZKP3LB9TRW", "url"},
		{"https://x.example/?k=%41%4B%49%41%37%51%58%32%4D%34%5A%4B%50%33%4C%42%39%54%52%57", "url"},
		{"https://x.example/?k=AKIA7QX2M4ZKP3LB9TR%57", "url"},
		{"https://x.example/?k=%41KIA7QX2M4ZKP3LB9TRW&x=1", "url"},
		{"q3Zx9%2BLm%2FTp0aBcDeFgH1jK%2F", "url"},
		{"q3Zx9%2bLm%2fTp0aBcDeFgH1jK%2f", "url"},
		// Line breaks, literal or escaped, are dropped; the token's own
		// characters are as planted.
		{"AKIA7QX2M4%0AZKP3LB9TRW", "raw"},
		{"AKIA7QX2M4%0d%0aZKP3LB9TRW", "raw"},
		{"aws_key=AKIA7QX2M4\\nZKP3LB9TRW", ""},
		{"aws_key=123456AKIA7QX2M4\\nZKP3LB9TRW", "raw"},
		{"q3Zx9+Lm\\/Tp0aBcDeFgH1jK\\/", "raw"},
		// A literal line break is dropped only after a run of 16
		// characters of the encodings' alphabets, as wrapped encodings
		// have and text seldom does.
		{"key AKIA7QX2M4\r\nZKP3LB9TRW", ""},
		{"key=123456AKIA7QX2M4\r\nZKP3LB9TRW", "raw"},
		{"key=123456AKIA7QX2M4\n\n\nZKP3LB9TRW", "raw"},
		{"key=12345.AKIA7QX2M4\r\nZKP3LB9TRW", ""},
		// Escapes are decoded once, as a server does.
		{"A%254BIA7QX2M4ZKP3LB9TRW", ""},
		// A % that begins no escape stays.
		{"AKIA7QX2M4%ZKP3LB9TRW", ""},
		{"AKIA7QX2M4%4ZKP3LB9TRW", ""},
		{"AKIA7QX2M4ZKP3LB9TR%5", ""},
		{"AKIA7QX2M4ZKP3LB9TR", ""},
		{"akia7qx2m4zkp3lb9trw", ""}, // raw is exact
	}
	for _, tt := range tests {
		h, ok := s.ScanString(tt.in)
		if got := map[bool]string{true: h.Encoding}[ok]; got != tt.want {
			t.Errorf("ScanString(%q) = %+v, %v; want %q", tt.in, h, ok, tt.want)
		}
	}
}

// TestScanCase: hex and base32 in any case, raw and base64 exactly.
func TestScanCase(t *testing.T) {
	s := newScanner(t, tokAWS)
	hexTok := hex.EncodeToString([]byte(tokAWS))
	b32 := base32.StdEncoding.EncodeToString([]byte(tokAWS))
	b64 := base64.StdEncoding.EncodeToString([]byte(tokAWS))
	mixed := func(s string) string {
		b := []byte(s)
		for i := 0; i < len(b); i += 2 {
			b[i] = bytes.ToUpper(b[i : i+1])[0]
		}
		return string(b)
	}
	tests := []struct {
		in   string
		want string // Encoding; "" for no hit
	}{
		{hexTok, "hex"},
		{strings.ToUpper(hexTok), "hex"},
		{mixed(hexTok), "hex"},
		{b32, "base32"},
		{strings.ToLower(b32), "base32"},
		{mixed(strings.ToLower(b32)), "base32"},
		{b64, "base64"},
		{strings.ToLower(b64), ""},
		{strings.ToLower(tokAWS), ""},
		// Bytes that fold like digits without being them.
		{strings.ReplaceAll(hexTok, "4", "\x14"), ""},
		{strings.ReplaceAll(strings.ToLower(b32), "2", "\x12"), ""},
	}
	for _, tt := range tests {
		h, ok := s.ScanString(tt.in)
		if got := map[bool]string{true: h.Encoding}[ok]; got != tt.want {
			t.Errorf("ScanString(%q) = %+v, %v; want %q", tt.in, h, ok, tt.want)
		}
	}
}

func TestScanMultipleTokens(t *testing.T) {
	s := newScanner(t, tokens...)
	for _, tok := range tokens {
		in := "prefix " + tok + " suffix"
		if h, ok := s.ScanString(in); !ok || h.Token != tok || h.Encoding != "raw" {
			t.Errorf("ScanString(%q) = %+v, %v; want %s raw", in, h, ok, tok)
		}
	}
	// The first in the data is reported.
	in := "x" + base64.StdEncoding.EncodeToString([]byte(tokShort)) + " " + tokAWS
	if h, ok := s.ScanString(in); !ok || h.Token != tokShort || h.Encoding != "base64" {
		t.Errorf("ScanString(%q) = %+v, %v; want %s base64", in, h, ok, tokShort)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		tokens  []string
		wantErr bool
	}{
		{"none", nil, false},
		{"one", []string{tokAWS}, false},
		{"duplicates", []string{tokAWS, tokAWS}, false},
		{"shortest", []string{"123456789012"}, false},
		{"too short", []string{tokAWS, "12345678901"}, true},
		{"empty", []string{""}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.tokens)
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%q) error = %v, want error %v", tt.tokens, err, tt.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), tokAWS) {
					t.Errorf("New error %q shows a token", err)
				}
				return
			}
			for _, tok := range tt.tokens {
				if h, ok := s.ScanString(tok); !ok || h.Token != tok {
					t.Errorf("ScanString(%q) = %+v, %v; want a hit", tok, h, ok)
				}
			}
			if h, ok := s.ScanString("nothing to see %0A here\n"); ok {
				t.Errorf("ScanString(nothing) = %+v, true", h)
			}
		})
	}
}

// TestSpellings checks the patterns against the encoders of the standard
// library: each must occur in the encoding of the token at its alignment
// with whatever bytes around it.
func TestSpellings(t *testing.T) {
	for _, tok := range tokens {
		ps := spellings(tok, 0)
		if len(ps) < 12 {
			t.Errorf("spellings(%q): %d patterns, want at least 12", tok, len(ps))
		}
		for _, p := range ps {
			if p.enc == "raw" || p.enc == "hex" {
				continue
			}
			found := false
			for a := range 5 {
				all := true
				for _, fill := range []byte{0x00, 0xff, 0x5a} {
					data := slices.Concat(bytes.Repeat([]byte{fill}, a), []byte(tok), bytes.Repeat([]byte{fill}, 4))
					var enc string
					switch p.enc {
					case "base64":
						enc = base64.StdEncoding.EncodeToString(data)
					case "base64url":
						enc = base64.URLEncoding.EncodeToString(data)
					case "base32":
						enc = strings.ToLower(base32.StdEncoding.EncodeToString(data))
					case "base32hex":
						enc = strings.ToLower(base32.HexEncoding.EncodeToString(data))
					}
					if !strings.Contains(enc, string(p.b)) {
						all = false
					}
				}
				found = found || all
			}
			if !found {
				t.Errorf("%s pattern %q of %q is in no encoding of it at any alignment", p.enc, p.b, tok)
			}
		}
	}
}

// TestNoFalsePositive scans data that holds none of the tokens.
func TestNoFalsePositive(t *testing.T) {
	s := newScanner(t, tokens...)
	r := rand.New(rand.NewPCG(3, 4))
	inputs := map[string][]byte{
		"random 10 MiB": randBytes(r, 10<<20),
		"text":          text(t, 4<<20),
		"base64 of random": func() []byte {
			return []byte(base64.StdEncoding.EncodeToString(randBytes(r, 3<<20)))
		}(),
		"hex of random":     []byte(hex.EncodeToString(randBytes(r, 1<<20))),
		"url of random":     percentSome(0x0f0f0f0f0f0f0f0f, false)(randBytes(r, 1<<20)),
		"near misses":       nearMisses(),
		"credentials":       credentials("AKIAIOSFODNN7EXAMPLE", 0),
		"base32 of text":    []byte(base32.StdEncoding.EncodeToString(text(t, 1<<20))),
		"percents a-plenty": bytes.Repeat([]byte("%41%4B%49%41%25%0A\n\r%"), 1<<15),
	}
	for name, data := range inputs {
		if h, ok := s.Scan(data); ok {
			t.Errorf("Scan(%s) = %+v, true; want no hit", name, h)
		}
		st := s.NewStream()
		for p := data; len(p) > 0; {
			n := min(len(p), 1+r.IntN(20000))
			if h, ok := st.Write(p[:n]); ok {
				t.Errorf("Stream.Write(%s) = %+v, true; want no hit", name, h)
				break
			}
			p = p[n:]
		}
	}
}

// nearMisses returns each token's spellings with one character changed,
// the data most likely to pass the prefilter.
func nearMisses() []byte {
	var out []byte
	for _, tok := range tokens {
		for _, p := range spellings(tok, 0) {
			for i := range p.b {
				b := bytes.Clone(p.b)
				b[i] ^= 0x01
				if b[i] == '\r' || b[i] == '\n' || b[i] == '%' {
					b[i] = '!'
				}
				out = append(append(out, b...), ' ')
			}
		}
	}
	return out
}

// text returns n bytes of real text: Go's own sources.
func text(t testing.TB, n int) []byte {
	t.Helper()
	var out []byte
	dir := filepath.Join(build.Default.GOROOT, "src", "net", "http")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("no Go sources for text: %v", err)
	}
	for len(out) < n {
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".go") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
			if len(out) >= n {
				return out[:n]
			}
		}
	}
	return out[:n]
}

// FuzzScan feeds Scan anything: it must not panic, it must find a token
// exactly where a plain search of the data and of the data normalised
// whole (refNormalize) finds one, and so must a Stream written in pieces.
func FuzzScan(f *testing.F) {
	s := newScanner(f, tokens...)
	f.Add([]byte("A%4BIA7QX2M4ZKP3LB9TRW"), []byte{3})
	f.Add([]byte("%%%4%4g%0a\r\n%"), []byte{0})
	f.Add(credentials(tokGitHub, 3), []byte{})
	f.Add([]byte("x=QUtJQTdRWDJNNFpLUDNM\nQjlUUlc"), []byte{5, 1})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		_, found := s.Scan(data)
		norm, _ := refNormalize(data)
		if want := plainFind(s, data) || plainFind(s, norm); found != want {
			t.Fatalf("Scan(%q) found = %v, want %v", data, found, want)
		}
		if _, got := chunked(s, data, sizes); got != found {
			t.Fatalf("Stream(%q in pieces %v) found = %v, Scan found = %v", data, sizes, got, found)
		}
	})
}

// plainFind reports whether any pattern of s occurs in b, looking at every
// position.
func plainFind(s *Scanner, b []byte) bool {
	for _, p := range s.pats {
		for i := 0; i+len(p.b) <= len(b); i++ {
			if p.match(b[i : i+len(p.b)]) {
				return true
			}
		}
	}
	return false
}

func BenchmarkScan(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 10))
	inputs := []struct {
		name string
		data []byte
	}{
		{"random", randBytes(r, 1<<20)},
		{"text", text(b, 1<<20)},
		{"base64", []byte(base64.StdEncoding.EncodeToString(randBytes(r, 3<<18)))},
		// The worst case: every sample passes the filter.
		{"nearmisses", bytes.Repeat(nearMisses(), 1+(1<<20)/len(nearMisses()))[:1<<20]},
	}
	for _, set := range []struct {
		name   string
		tokens []string
	}{
		{"decoys", decoys}, // 20, 40 and 24 bytes: a stride of 13
		{"with12", tokens}, // and the shortest allowed: a stride of 5
		{"32tokens", func() []string {
			var ts []string
			for range 32 {
				ts = append(ts, base64.RawURLEncoding.EncodeToString(randBytes(r, 30)))
			}
			return ts
		}()},
	} {
		s := newScanner(b, set.tokens...)
		for _, in := range inputs {
			b.Run(set.name+"/"+in.name, func(b *testing.B) {
				b.SetBytes(int64(len(in.data)))
				for b.Loop() {
					if _, ok := s.Scan(in.data); ok {
						b.Fatal("hit")
					}
				}
			})
		}
	}
}
