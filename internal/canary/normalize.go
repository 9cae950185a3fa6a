package canary

import (
	"bytes"
	"sort"
)

// A normalizer rewrites data the way its receiver would most likely read
// it, so that one set of patterns finds a token however it was escaped or
// wrapped:
//
//   - a percent escape (% and two hex digits, either case) becomes its
//     byte, whichever characters were escaped: "A%4BIA…", "%41%4B%49%41…",
//     base64 with %2B %2F %3D;
//   - \/ (JSON's, PHP's) becomes /;
//   - a percent-escaped line break (%0A, %0D) is dropped; so is a literal
//     CR or LF, or a JSON \n or \r, that ends a run of at least runLen
//     characters of the base64, base32 and hex alphabets (or follows
//     another dropped one): wrapped encodings (base64(1) wraps at 76
//     columns, PEM at 64, xxd -p at 60), as they are or pasted into a JSON
//     string, read as one run, while the line breaks of ordinary text,
//     which seldom end 16 such characters in a row, are left alone and
//     cost nothing.
//
// Escapes are decoded once, as a server decodes them: "%2541" becomes
// "%41", not "A". Decoding twice would find doubly encoded tokens but miss
// singly encoded ones that follow a literal "%" ("%25" then "AB12…" would
// turn into one byte 0xAB). A % or \ that begins no escape stays.
//
// The data as sent is always scanned too, so nothing is lost by
// normalising; and only the normalised bytes near a change need scanning
// again (see Scanner.findAround). A normalizer carries a partial escape and
// the length of the current alphabet run from one call to the next; the
// zero value is ready.
type normalizer struct {
	pend  [2]byte // "%", "%" and a hex digit, or "\", held from the last call
	npend int
	run   int // alphabet bytes just before the point reached; runLen after a dropped break
}

// runLen is how many alphabet characters must precede a literal line
// break for it to be dropped.
const runLen = 16

// normalized is where a normalizer writes.
type normalized struct {
	b    []byte // the normalised bytes, when they differ from the input
	esc  []int  // indices in b of bytes decoded from percent escapes
	mods []int  // indices in b of every change: a byte decoded or held over, or a gap left by a drop
}

// normalize normalises src, which follows what earlier calls saw. It
// returns src itself, and false, if normalising changes nothing in it;
// otherwise o.b, filled, and true.
func (n *normalizer) normalize(src []byte, o *normalized) ([]byte, bool) {
	o.b, o.esc, o.mods = o.b[:0], o.esc[:0], o.mods[:0]
	changed := false
	done := 0 // src[:done] has been written to o.b, or needs no writing
	if n.npend > 0 {
		changed = true
		done = n.resume(src, o)
	}
	last := done // n.run is the run just before src[last]

	// replace replaces src[i:j] with c, or with nothing if c < 0.
	replace := func(i, j, c int) {
		changed = true
		o.b = append(o.b, src[done:i]...)
		o.mods = append(o.mods, len(o.b))
		if c >= 0 {
			o.b = append(o.b, byte(c))
		}
		done = j
	}

	f := newFinder(src)
	for i := done; ; {
		// Line feeds, the special bytes of text, are handled in a loop of
		// their own up to the next byte of the other kinds.
		stop := f.from(i)
		for {
			k := bytes.IndexByte(src[i:stop], '\n')
			if k < 0 {
				break
			}
			j := i + k
			if n.qualifies(src, last, j) {
				replace(j, j+1, -1)
				n.run = runLen
			} else {
				n.run = 0
			}
			i, last = j+1, j+1
		}
		j := stop
		if j == len(src) {
			break
		}
		rest := src[j+1:]
		switch src[j] {
		case '\r':
			if !n.qualifies(src, last, j) {
				n.run, i = 0, j+1
				break
			}
			replace(j, j+1, -1)
			n.run, i = runLen, j+1
		case '%':
			switch {
			case len(rest) >= 2 && ishex(rest[0]) && ishex(rest[1]):
				// This escape and any that follow it at once: a body
				// percent-encoded throughout is one run of them.
				run := n.runAt(src, last, j)
				for i = j; i+2 < len(src) && src[i] == '%' && ishex(src[i+1]) && ishex(src[i+2]); i += 3 {
					c := unhex(src[i+1])<<4 | unhex(src[i+2])
					if c == '\r' || c == '\n' {
						replace(i, i+3, -1)
						run = runLen
						continue
					}
					replace(i, i+3, int(c))
					o.esc = append(o.esc, len(o.b)-1)
					run = next(run, c)
				}
				n.run = run
			case len(rest) == 0, len(rest) == 1 && ishex(rest[0]):
				n.hold(src[j:], n.runAt(src, last, j))
				o.b = append(o.b, src[done:j]...)
				return o.b, true
			default:
				n.run, i = 0, j+1
			}
		case '\\':
			if len(rest) == 0 {
				n.hold(src[j:], n.runAt(src, last, j))
				o.b = append(o.b, src[done:j]...)
				return o.b, true
			}
			switch rest[0] {
			case 'n', 'r':
				if !n.qualifies(src, last, j) {
					n.run, i = 0, j+1
					break
				}
				replace(j, j+2, -1)
				n.run, i = runLen, j+2
			case '/':
				run := n.runAt(src, last, j)
				replace(j, j+2, '/')
				n.run, i = next(run, '/'), j+2
			case '\\':
				n.run, i = 0, j+2 // an escaped backslash, not the start of an escape
			default:
				n.run, i = 0, j+1
			}
		}
		last = i
	}
	n.run = n.runAt(src, last, len(src))
	if !changed {
		return src, false
	}
	o.b = append(o.b, src[done:]...)
	return o.b, true
}

// hold keeps the partial escape p, which ends the input, for the next
// call: until then the output lacks it.
func (n *normalizer) hold(p []byte, run int) {
	n.npend = copy(n.pend[:], p)
	n.run = run
}

// resume finishes, from the start of src, the escape held from the last
// call, writing to o what it becomes. It returns how many bytes of src it
// read.
func (n *normalizer) resume(src []byte, o *normalized) int {
	i := 0
	for ; n.npend > 0 && i < len(src); i++ {
		c := src[i]
		if n.pend[0] == '\\' {
			n.npend = 0
			switch {
			case (c == 'n' || c == 'r') && n.run >= runLen:
				o.mods = append(o.mods, len(o.b))
				n.run = runLen
			case c == '/':
				o.mods = append(o.mods, len(o.b))
				o.b = append(o.b, '/')
				n.run = next(n.run, '/')
			case c == '\\':
				o.mods = append(o.mods, len(o.b), len(o.b)+1)
				o.b = append(o.b, '\\', '\\')
				n.run = 0
			default:
				o.mods = append(o.mods, len(o.b))
				o.b = append(o.b, '\\')
				n.run = 0
				return i // c is read again
			}
			return i + 1
		}
		if !ishex(c) {
			n.flushTo(o)
			return i // c is read again
		}
		if n.npend == 1 {
			n.pend[1], n.npend = c, 2
			continue
		}
		n.npend = 0
		o.mods = append(o.mods, len(o.b))
		if d := unhex(n.pend[1])<<4 | unhex(c); d == '\r' || d == '\n' {
			n.run = runLen
		} else {
			o.esc = append(o.esc, len(o.b))
			o.b = append(o.b, d)
			n.run = next(n.run, d)
		}
		return i + 1
	}
	return i
}

// flushTo writes to o, as they are, the bytes held from an unfinished
// escape; at the end of the data, that is what they were.
func (n *normalizer) flushTo(o *normalized) {
	for _, c := range n.pend[:n.npend] {
		o.mods = append(o.mods, len(o.b))
		o.b = append(o.b, c)
		n.run = next(n.run, c)
	}
	n.npend = 0
}

// runAt returns the length of the alphabet run just before src[j], up to
// runLen, given n.run, the run just before src[last], and that
// src[last:j] holds no special byte.
func (n *normalizer) runAt(src []byte, last, j int) int {
	k := j
	for k > last && j-k < runLen && alphabet[src[k-1]] {
		k--
	}
	if k == last {
		return min(runLen, n.run+j-last)
	}
	return j - k
}

// qualifies reports whether a literal line break at src[j] is to be
// dropped: runAt(src, last, j) is runLen. Most line breaks of text are
// told apart by the length of their line, or by one of three bytes before
// them.
func (n *normalizer) qualifies(src []byte, last, j int) bool {
	switch {
	case j-last >= runLen:
		if alpha[src[j-1]]&alpha[src[j-8]]&alpha[src[j-runLen]] == 0 {
			return false
		}
	case n.run+j-last < runLen:
		return false // a short line after a kept break
	}
	return n.runAt(src, last, j) >= runLen
}

// next returns the run after c, given the run before it.
func next(run int, c byte) int {
	if alphabet[c] {
		return min(runLen, run+1)
	}
	return 0
}

// alphabet holds (and alpha, as 1, for a test without branches) the characters of the base64 (both), base32 (both) and
// hex alphabets, but not padding: a pattern never holds "=".
var alphabet, alpha = func() (a [256]bool, b [256]uint8) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_") {
		a[c], b[c] = true, 1
	}
	return a, b
}()

// A finder finds the bytes of src that a normalizer looks at, other than
// line feeds: %, \ and CR. It keeps where each kind next occurs, so that
// each byte of src is searched once per kind however many special bytes
// there are, and lets bytes.IndexByte, which reads tens of bytes a cycle,
// do the searching.
type finder struct {
	src          []byte
	pct, bsl, cr int // where each kind next occurs at or after the last call's i
}

func newFinder(src []byte) finder {
	return finder{src: src, pct: -1, bsl: -1, cr: -1}
}

// from returns the index of the first %, \ or CR at or after i, or
// len(src). Successive calls must not go back.
func (f *finder) from(i int) int {
	if f.pct < i {
		f.pct = f.index(i, '%')
	}
	if f.bsl < i {
		f.bsl = f.index(i, '\\')
	}
	if f.cr < i {
		f.cr = f.index(i, '\r')
	}
	return min(f.pct, f.bsl, f.cr)
}

func (f *finder) index(i int, c byte) int {
	if n := bytes.IndexByte(f.src[i:], c); n >= 0 {
		return i + n
	}
	return len(f.src)
}

// escaped reports whether any index in esc, which is sorted, lies in
// [start, end).
func escaped(esc []int, start, end int) bool {
	k := sort.SearchInts(esc, start)
	return k < len(esc) && esc[k] < end
}

func ishex(c byte) bool {
	return hexval[c] < 16
}

func unhex(c byte) byte {
	return hexval[c]
}

// hexval holds the value of each hex digit, and 16 for other bytes.
var hexval = func() (v [256]byte) {
	for i := range v {
		v[i] = 16
	}
	for i, c := range []byte("0123456789abcdef") {
		v[c] = byte(i)
	}
	for i, c := range []byte("ABCDEF") {
		v[c] = byte(10 + i)
	}
	return v
}()
