package canary

import (
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
)

// MinTokenLen is the shortest token New accepts. Shorter ones could turn up
// in ordinary data by chance (hex and base32 spellings match in any case),
// and the prefilter's stride, the shortest spelling less 7, would shrink
// towards one byte.
const MinTokenLen = 12

// Hit is a canary found.
type Hit struct {
	Token    string // the canary as planted
	Encoding string // "raw", "base64", "base64url", "base32", "base32hex", "hex", "url", "gzip+base64", ...
}

// Scanner holds the patterns of a set of tokens. Safe for concurrent use:
// it is not changed after New.
type Scanner struct {
	tokens []string
	pats   []pattern

	minLen, maxLen int // of the patterns
	step           int // distance between sampled positions: minLen-gram+1

	// The prefilter: one bit per hash of every folded 8-byte gram that
	// occurs in a pattern; and the grams themselves, with where they
	// occur, in an open-addressed table (a Go map costs twice as much on
	// data made of near misses, where every sample is looked up).
	filter []uint64
	mask   uint64 // bits in filter, less one
	slots  []gramSlot
	refs   []gramRef // slices of it belong to slots

	bufs sync.Pool // of *normalized, for Scan

	ready sync.Once // the tables above are built
}

// A pattern is one spelling of one token.
type pattern struct {
	b     []byte // lower case if fold
	fold  bool   // match ASCII letters in any case
	token int    // index in Scanner.tokens
	enc   string // "raw", "hex", "base64", ...
}

// A gramRef says that a gram occurs in pattern pat at offset off.
type gramRef struct {
	pat, off int32
}

// A gramSlot holds a folded gram, never 0, and its refs[start:end]; an
// empty slot holds gram 0.
type gramSlot struct {
	gram       uint64
	start, end int32
}

const (
	gram      = 8                  // bytes the prefilter reads at a time: one uint64 load
	foldMask  = 0x2020202020202020 // sets the ASCII lower-case bit of each byte
	hashMul   = 0x9e3779b97f4a7c15 // odd; spreads a gram's bits into the top of the product
	hashBits  = 24                 // of the product kept: the filter's largest size
	hashShift = 64 - hashBits
)

// New returns a Scanner for tokens. A token shorter than MinTokenLen is an
// error; duplicates are ignored. With no tokens the Scanner finds nothing.
//
// Each token is spelled in advance in every encoding the Scanner looks for:
// raw; hex (matched in any case); standard and URL-safe base64 at each of
// the three alignments a token can have inside encoded data (exact case);
// standard and extended-hex base32 at each of the five alignments (any
// case). Of an encoding, only the characters fully determined by the
// token's own bytes are kept, so that the pattern matches whatever
// surrounds the token and wherever the encoding starts; padding never takes
// part.
func New(tokens []string) (*Scanner, error) {
	s := &Scanner{}
	seen := make(map[string]bool)
	for i, t := range tokens {
		if len(t) < MinTokenLen {
			// The token itself stays out of the message: errors get printed.
			return nil, fmt.Errorf("canary token %d: %d bytes, want at least %d", i, len(t), MinTokenLen)
		}
		if seen[t] {
			continue
		}
		seen[t] = true
		s.tokens = append(s.tokens, t)
		s.pats = append(s.pats, spellings(t, len(s.tokens)-1)...)
	}
	return s, nil
}

// Prepare builds the scanner's tables, once: tens of milliseconds for a
// run's tokens. Every scan prepares the scanner first if it is not done,
// and waits for a Prepare under way; calling it early, in a goroutine of
// its own, takes the cost off the first scan.
func (s *Scanner) Prepare() { s.ready.Do(s.build) }

// spellings returns the patterns of token t, without duplicates (the two
// base64 alphabets spell most alphanumeric tokens alike at some alignment).
func spellings(t string, token int) []pattern {
	var ps []pattern
	add := func(b []byte, fold bool, enc string) {
		if fold {
			b = []byte(strings.ToLower(string(b)))
		}
		for _, p := range ps {
			if p.fold == fold && string(p.b) == string(b) {
				return
			}
		}
		ps = append(ps, pattern{b: b, fold: fold, token: token, enc: enc})
	}
	add([]byte(t), false, "raw")
	add([]byte(hex.EncodeToString([]byte(t))), true, "hex")
	for a := range 3 {
		for _, e := range []struct {
			enc  *base64.Encoding
			name string
		}{{base64.RawStdEncoding, "base64"}, {base64.RawURLEncoding, "base64url"}} {
			add(determined(e.enc.EncodeToString(aligned(t, a)), 6, a, len(t)), false, e.name)
		}
	}
	for a := range 5 {
		for _, e := range []struct {
			enc  *base32.Encoding
			name string
		}{{base32.StdEncoding, "base32"}, {base32.HexEncoding, "base32hex"}} {
			enc := e.enc.WithPadding(base32.NoPadding)
			add(determined(enc.EncodeToString(aligned(t, a)), 5, a, len(t)), true, e.name)
		}
	}
	return ps
}

// aligned returns t after a zero bytes.
func aligned(t string, a int) []byte {
	return append(make([]byte, a), t...)
}

// determined returns the characters of enc, the encoding of a bytes and
// then the n bytes of a token, at width bits a character, that depend on
// the token's bytes alone: the first and last characters straddle the
// bytes around the token and are dropped.
func determined(enc string, width, a, n int) []byte {
	first := (8*a + width - 1) / width
	end := (8*a + 8*n) / width
	return []byte(enc[first:end])
}

// build makes the prefilter.
//
// Why not Aho-Corasick: an automaton takes a table step for every input
// byte, which in Go runs at well under 1 GB/s, and a case-insensitive one
// doubles its alphabet. The patterns here are long (MinTokenLen and up, and
// most of them far longer), so a sampling filter does better: any
// occurrence of a pattern of length m covers m-gram+1 consecutive starting
// positions of 8-byte grams that lie wholly inside it, so reading the gram
// at every step-th position of the data, step = minLen-gram+1, meets every
// occurrence at least once. A sampled gram is folded to lower case (all
// patterns' grams are folded alike, so case-insensitive patterns pass;
// exact ones are checked exactly later), hashed, and tested against a
// bitset of the patterns' gram hashes; only a set bit costs a map lookup
// and a comparison. For 20-byte tokens that is one load, a multiply and a
// bit test every 13 bytes.
//
// Data built to defeat it (grams of the patterns themselves, which a
// contained program can read from the decoys) turns every sample into a
// comparison of at most maxLen bytes: slower by a constant factor, never
// worse than linear.
func (s *Scanner) build() {
	if len(s.pats) == 0 {
		return
	}
	s.minLen, s.maxLen = len(s.pats[0].b), 0
	n := 0
	for _, p := range s.pats {
		s.minLen = min(s.minLen, len(p.b))
		s.maxLen = max(s.maxLen, len(p.b))
		n += len(p.b) - gram + 1
	}
	s.step = s.minLen - gram + 1

	// About 64 bits for each gram keeps the filter's false positives near
	// 1.5%; no smaller than 4 KiB, no larger than 2 MiB.
	size := 1 << 15
	for size < 64*n && size < 1<<hashBits {
		size <<= 1
	}
	s.filter = make([]uint64, size/64)
	s.mask = uint64(size - 1)
	grams := make(map[uint64][]gramRef)
	for i, p := range s.pats {
		for off := 0; off+gram <= len(p.b); off++ {
			g := binary.LittleEndian.Uint64(p.b[off:]) | foldMask
			h := (g * hashMul >> hashShift) & s.mask
			s.filter[h>>6] |= 1 << (h & 63)
			grams[g] = append(grams[g], gramRef{int32(i), int32(off)})
		}
	}

	// At most half full, so that a probe ends soon.
	n = 16
	for n < 2*len(grams) {
		n <<= 1
	}
	s.slots = make([]gramSlot, n)
	for g, refs := range grams {
		i := s.slot(g)
		for s.slots[i].gram != 0 {
			i = (i + 1) & (len(s.slots) - 1)
		}
		s.slots[i] = gramSlot{g, int32(len(s.refs)), int32(len(s.refs) + len(refs))}
		s.refs = append(s.refs, refs...)
	}
}

// slot returns where the search for gram g in s.slots starts.
func (s *Scanner) slot(g uint64) int {
	return int(g*hashMul>>32) & (len(s.slots) - 1)
}

// lookup returns where gram g occurs in the patterns.
func (s *Scanner) lookup(g uint64) []gramRef {
	for i := s.slot(g); s.slots[i].gram != 0; i = (i + 1) & (len(s.slots) - 1) {
		if sl := s.slots[i]; sl.gram == g {
			return s.refs[sl.start:sl.end]
		}
	}
	return nil
}

// find returns the index of a pattern that occurs in b and where, or -1.
func (s *Scanner) find(b []byte) (pat, at int) {
	if len(s.pats) == 0 {
		return -1, 0
	}
	filter, mask, step := s.filter, s.mask, s.step
	for i := 0; i+gram <= len(b); i += step {
		g := binary.LittleEndian.Uint64(b[i:]) | foldMask
		h := (g * hashMul >> hashShift) & mask
		if filter[h>>6]&(1<<(h&63)) != 0 {
			if pat, at := s.verify(b, i, g); pat >= 0 {
				return pat, at
			}
		}
	}
	return -1, 0
}

// verify returns a pattern that holds gram g, read at b[i:], and occurs
// there, or -1. Apart from find to keep find's loop small.
//
//go:noinline
func (s *Scanner) verify(b []byte, i int, g uint64) (pat, at int) {
	for _, r := range s.lookup(g) {
		p := &s.pats[r.pat]
		start := i - int(r.off)
		if start >= 0 && start+len(p.b) <= len(b) && p.match(b[start:start+len(p.b)]) {
			return int(r.pat), start
		}
	}
	return -1, 0
}

// match reports whether b, as long as the pattern, is the pattern.
func (p *pattern) match(b []byte) bool {
	if !p.fold {
		return string(b) == string(p.b)
	}
	// Folded as the filter folds, eight bytes at a time: this turns away
	// near misses quickly, but lets a few bytes that are not letters pass
	// (0x10 folds to '0'), so what passes is checked exactly.
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])|foldMask != binary.LittleEndian.Uint64(p.b[i:])|foldMask {
			return false
		}
	}
	for ; i < len(b); i++ {
		if b[i]|0x20 != p.b[i]|0x20 {
			return false
		}
	}
	for i, c := range b {
		if lower(c) != p.b[i] {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hit returns the Hit for pattern pat, found under the encodings named by
// outer (outermost first, "" for none) and, if url, percent-decoding.
func (s *Scanner) hit(pat int, outer string, url bool) Hit {
	p := s.pats[pat]
	var parts []string
	if outer != "" {
		parts = append(parts, outer)
	}
	if url {
		parts = append(parts, "url")
	}
	if p.enc != "raw" || len(parts) == 0 {
		parts = append(parts, p.enc)
	}
	return Hit{Token: s.tokens[p.token], Encoding: strings.Join(parts, "+")}
}

// findAround is find for the normalised bytes b, where only what lies
// near a change (mods, indices in b) can differ from the data as sent,
// which was scanned already: an occurrence that holds no change is a run
// of the bytes as sent. Windows of maxLen bytes either side of each change
// are scanned, joined where they meet.
func (s *Scanner) findAround(b []byte, mods []int) (pat, at int) {
	w := s.maxLen
	for k := 0; k < len(mods); {
		start, end := max(0, mods[k]-w), min(len(b), mods[k]+w)
		for k++; k < len(mods) && mods[k]-w <= end; k++ {
			end = min(len(b), mods[k]+w)
		}
		if pat, at := s.find(b[start:end]); pat >= 0 {
			return pat, start + at
		}
	}
	return -1, 0
}

// Scan looks for the tokens in b, one complete buffer: a host name, a URL,
// a header value, a whole body.
//
// It scans b as it is, then b normalised (see normalizer) where that
// differs: a token partly or fully percent-encoded, base64 whose + / =
// were percent-encoded in a URL, base64 wrapped at 76 columns, or pasted
// into a JSON string, are found there.
func (s *Scanner) Scan(b []byte) (Hit, bool) {
	s.Prepare()
	if pat, _ := s.find(b); pat >= 0 {
		return s.hit(pat, "", false), true
	}
	if len(s.pats) == 0 {
		return Hit{}, false
	}
	o, _ := s.bufs.Get().(*normalized)
	if o == nil {
		o = new(normalized)
	}
	defer s.bufs.Put(o)
	var n normalizer
	nb, changed := n.normalize(b, o)
	if n.npend > 0 {
		n.flushTo(o) // the data ends: a partial escape is what it is
		nb = o.b
	}
	if !changed {
		return Hit{}, false
	}
	if pat, at := s.findAround(nb, o.mods); pat >= 0 {
		return s.hit(pat, "", escaped(o.esc, at, at+len(s.pats[pat].b))), true
	}
	return Hit{}, false
}

// ScanString is Scan for a string.
func (s *Scanner) ScanString(str string) (Hit, bool) {
	return s.Scan([]byte(str))
}
