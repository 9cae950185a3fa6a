package canary

import "bytes"

// Stream scans a byte stream written in pieces; a canary split across Write
// calls is found. Not safe for concurrent use; one per direction of a
// connection.
//
// It carries two tails from one Write to the next, each one byte shorter
// than the longest pattern: the last bytes of the stream as written, and
// the last bytes of the stream normalised (see normalizer), with a partial
// escape and the length of the current alphabet run held by the normalizer
// itself. An occurrence that ends in
// this Write and began earlier began within the tail, so scanning the tail
// joined to the head of p, then p itself, finds it; nothing longer is kept,
// however long the stream.
type Stream struct {
	s     *Scanner
	outer string // encodings the stream was decoded from, for Hit.Encoding

	hit   Hit
	found bool

	tail  []byte // the last maxLen-1 bytes written
	norm  normalizer
	ntail []byte // the last maxLen-1 bytes normalised
	nesc  []int  // indices in ntail of bytes decoded from escapes

	win  []byte     // scratch: a tail and the head of a Write
	wesc []int      // scratch: escapes in win
	nout normalized // scratch: a Write normalised
}

// NewStream returns a Stream that scans for s's tokens.
func (s *Scanner) NewStream() *Stream {
	s.Prepare()
	return &Stream{s: s}
}

// Write scans p with the carried-over tail of earlier writes. Once a hit is
// found it stays found: later Writes return it again without scanning.
func (st *Stream) Write(p []byte) (Hit, bool) {
	if st.found || len(st.s.pats) == 0 {
		return st.hit, st.found
	}
	keep := st.s.maxLen - 1

	// The stream as written.
	if pat, _ := st.scanJoined(st.tail, nil, p, nil); pat >= 0 {
		return st.record(pat, false)
	}
	if pat, _ := st.s.find(p); pat >= 0 {
		return st.record(pat, false)
	}

	// The stream normalised. Where it is the stream as written, it was
	// just scanned: only the join with the tail, if the tails differ, and
	// the bytes near a change need scanning.
	np, changed := st.norm.normalize(p, &st.nout)
	var esc []int
	if changed {
		esc = st.nout.esc
	}
	if changed || !bytes.Equal(st.ntail, st.tail) {
		if pat, at := st.scanJoined(st.ntail, st.nesc, np, esc); pat >= 0 {
			return st.record(pat, escaped(st.wesc, at, at+len(st.s.pats[pat].b)))
		}
	}
	if changed {
		if pat, at := st.s.findAround(np, st.nout.mods); pat >= 0 {
			return st.record(pat, escaped(esc, at, at+len(st.s.pats[pat].b)))
		}
	}

	st.tail, _ = keepTail(st.tail, nil, p, nil, keep)
	st.ntail, st.nesc = keepTail(st.ntail, st.nesc, np, esc, keep)
	return Hit{}, false
}

// scanJoined scans tail followed by the first maxLen-1 bytes of p, which is
// where an occurrence that began in an earlier Write ends. Occurrences wholly
// inside tail were looked for before; those wholly inside p are found by
// scanning p. It leaves the joined escapes in st.wesc.
func (st *Stream) scanJoined(tail []byte, tesc []int, p []byte, pesc []int) (pat, at int) {
	if len(tail) == 0 {
		return -1, 0
	}
	head := p[:min(len(p), st.s.maxLen-1)]
	st.win = append(append(st.win[:0], tail...), head...)
	st.wesc = append(st.wesc[:0], tesc...)
	for _, e := range pesc {
		if e >= len(head) {
			break
		}
		st.wesc = append(st.wesc, len(tail)+e)
	}
	return st.s.find(st.win)
}

func (st *Stream) record(pat int, url bool) (Hit, bool) {
	st.hit, st.found = st.s.hit(pat, st.outer, url), true
	// The tails are not needed any more.
	st.tail, st.ntail, st.nesc, st.win, st.wesc, st.nout = nil, nil, nil, nil, nil, normalized{}
	return st.hit, true
}

// keepTail returns the last keep bytes of tail followed by p, in tail's
// storage, and the escapes among them, in tesc's.
func keepTail(tail []byte, tesc []int, p []byte, pesc []int, keep int) ([]byte, []int) {
	drop := len(tail) + len(p) - keep // bytes that fall off the front
	if drop <= 0 {
		for _, e := range pesc {
			tesc = append(tesc, len(tail)+e)
		}
		return append(tail, p...), tesc
	}
	w := 0
	for _, e := range tesc {
		if e >= drop {
			tesc[w] = e - drop
			w++
		}
	}
	tesc = tesc[:w]
	for _, e := range pesc {
		if e+len(tail) >= drop {
			tesc = append(tesc, e+len(tail)-drop)
		}
	}
	if drop >= len(tail) {
		return append(tail[:0], p[drop-len(tail):]...), tesc
	}
	tail = append(tail[:0], tail[drop:]...)
	return append(tail, p...), tesc
}
