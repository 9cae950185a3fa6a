package canary

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// refNormalize is the normalizer's rules applied plainly, a byte at a time,
// to the whole of b: what a normalizer must produce however b is cut. It
// returns the normalised bytes and the indices of those decoded from
// percent escapes.
func refNormalize(b []byte) ([]byte, []int) {
	var out []byte
	var esc []int
	run := 0
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '%' && i+2 < len(b) && ishex(b[i+1]) && ishex(b[i+2]):
			d := unhex(b[i+1])<<4 | unhex(b[i+2])
			if d == '\r' || d == '\n' {
				run = runLen
			} else {
				esc = append(esc, len(out))
				out = append(out, d)
				run = next(run, d)
			}
			i += 3
		case c == '\\' && i+1 < len(b) && (b[i+1] == 'n' || b[i+1] == 'r') && run >= runLen:
			i += 2
		case c == '\\' && i+1 < len(b) && b[i+1] == '/':
			out = append(out, '/')
			run = next(run, '/')
			i += 2
		case c == '\\' && i+1 < len(b) && b[i+1] == '\\':
			out = append(out, '\\', '\\')
			run = 0
			i += 2
		case (c == '\r' || c == '\n') && run >= runLen:
			i++
		default:
			out = append(out, c)
			run = next(run, c)
			i++
		}
	}
	return out, esc
}

// normalizeChunked normalises data cut into pieces whose sizes come from
// sizes, and returns the whole output, with its escapes and changes.
func normalizeChunked(data, sizes []byte) (out []byte, esc, mods []int) {
	var n normalizer
	var o normalized
	out = []byte{}
	for i := 0; len(data) > 0; i++ {
		k := len(data)
		if len(sizes) > 0 {
			k = min(k, int(sizes[i%len(sizes)])+1)
		}
		nb, changed := n.normalize(data[:k], &o)
		if !changed && !bytes.Equal(nb, data[:k]) {
			panic("unchanged output differs from input")
		}
		for _, e := range o.esc {
			esc = append(esc, len(out)+e)
		}
		for _, m := range o.mods {
			mods = append(mods, len(out)+m)
		}
		out = append(out, nb...)
		data = data[k:]
	}
	o = normalized{}
	n.flushTo(&o)
	for _, m := range o.mods {
		mods = append(mods, len(out)+m)
	}
	return append(out, o.b...), esc, mods
}

func TestNormalize(t *testing.T) {
	long := "QUtJQTdRWDJNNFpLUDNMQjlUUlc" // 27 alphabet characters
	tests := []struct {
		in, want string
	}{
		{"", ""},
		{"plain text, nothing to do", "plain text, nothing to do"},
		{"A%4BIA", "AKIA"},
		{"A%4bIA", "AKIA"},
		{"%41%4B%49%41", "AKIA"},
		{"%2541", "%41"},
		{"100% sure", "100% sure"},
		{"%4", "%4"},
		{"%", "%"},
		{"%%41", "%A"},
		{"%4%41", "%4A"},
		{"%zz%4g", "%zz%4g"},
		{"a%0Ab%0dc", "abc"},
		{`a\nb\rc\/d`, `a\nb\rc/d`},
		{long + `\n` + long + `\r\n` + long, long + long + long},
		{`a\\nb`, `a\\nb`},
		{`a\xb\`, `a\xb\`},
		{"line one\nline two\r\n", "line one\nline two\r\n"},
		{long + "\n" + long + "\r\n" + long + "=\n", long + long + long + "=\n"},
		{long + "\n\n" + "ab\nab cd\nef", long + "ab" + "ab cd\nef"},
		{"short\nlines\n", "short\nlines\n"},
		{"x=" + long[:14] + "\n" + long, "x=" + long[:14] + "\n" + long},
		{"x=" + long[:16] + "\n" + long, "x=" + long[:16] + long},
		{"%2B" + long[:15] + "\n", "+" + long[:15]},
	}
	for _, tt := range tests {
		out, _, _ := normalizeChunked([]byte(tt.in), nil)
		if string(out) != tt.want {
			t.Errorf("normalize(%q) = %q, want %q", tt.in, out, tt.want)
		}
		if ref, _ := refNormalize([]byte(tt.in)); string(ref) != tt.want {
			t.Errorf("refNormalize(%q) = %q, want %q", tt.in, ref, tt.want)
		}
	}
}

// checkNormalize normalises data in pieces and compares with refNormalize,
// and checks that every byte of the output that is not a run of the input
// as it was lies within reach of a recorded change.
func checkNormalize(t *testing.T, data, sizes []byte) {
	out, esc, mods := normalizeChunked(data, sizes)
	want, wantEsc := refNormalize(data)
	if !bytes.Equal(out, want) || !slices.Equal(esc, wantEsc) {
		t.Fatalf("normalize(%q) in pieces %v = %q, escapes %v; want %q, %v", data, sizes, out, esc, want, wantEsc)
	}
	if !slices.IsSorted(mods) {
		t.Fatalf("normalize(%q) in pieces %v: changes %v not in order", data, sizes, mods)
	}
	// Between two changes the output must be a run of the input: what
	// findAround leaves unscanned.
	prev := 0
	for _, m := range append(mods, len(out)) {
		if m > prev && !bytes.Contains(data, out[prev:m]) {
			t.Fatalf("normalize(%q) in pieces %v: %q, between changes, is not in the input", data, sizes, out[prev:m])
		}
		prev = max(prev, m+1)
	}
}

func TestNormalizeRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	alphabet := []byte("%\\\r\nnr/4bAZ=+ x0123456789abcdefghijklmnopq")
	for range 50000 {
		data := make([]byte, r.IntN(80))
		for i := range data {
			data[i] = alphabet[r.IntN(len(alphabet))]
		}
		sizes := randBytes(r, r.IntN(4))
		for i := range sizes {
			sizes[i] %= 10
		}
		checkNormalize(t, data, sizes)
	}
}

func FuzzNormalize(f *testing.F) {
	f.Add([]byte("A%4BIA%0A\\n\\/%%4"), []byte{1, 2})
	f.Add([]byte("QUtJQTdRWDJNNFpLUDNMQjlUUlc\r\nQUtJ\n\n"), []byte{0})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		checkNormalize(t, data, sizes)
	})
}

func BenchmarkNormalize(b *testing.B) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, in := range []struct {
		name string
		data []byte
	}{
		{"random", randBytes(r, 1<<20)},
		{"text", text(b, 1<<20)},
		{"url", percentSome(0x5555555555555555, false)(randBytes(r, 1<<19))},
	} {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			var o normalized
			for b.Loop() {
				var n normalizer
				n.normalize(in.data, &o)
			}
		})
	}
}
