package canary

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
)

// maxDecoded is the most Body decodes of one body. Past it decoding stops
// without an error: a body that inflates beyond it is a decompression bomb
// or too big to be worth it, and its bytes are still forwarded and scanned
// as sent.
const maxDecoded = 64 << 20

// errAbandoned ends the decoding of a body whose reader was dropped before
// EOF.
var errAbandoned = errors.New("body abandoned before EOF")

// Body scans an HTTP message body given its Content-Encoding.
//
// It returns a reader that yields the bytes of r unchanged, for forwarding,
// and a func that tells whether a hit was seen so far. Call it after the
// reader has returned io.EOF (or any error) to learn about the whole body:
// by then decoding has finished. It may be called at any time, from any
// goroutine; before EOF it knows every byte read as sent, but the decoded
// bytes trail: the decoder takes each Read's bytes before Read returns, yet
// may hold tens of KiB of output until it has more input (a deflate window
// is 32 KiB), so a token in a compressed body can be seen only a few reads
// later, at worst at EOF.
//
// The body is scanned as sent, with a Stream, and also decoded and scanned
// again: contentEncoding is the header's value, a comma-separated list of
// "gzip", "x-gzip", "deflate" (zlib, or raw deflate as some servers send),
// "identity" or "". Codings are undone from the last to the first; an
// unknown one (br, zstd) stops there. With no coding to undo, a body that
// starts with a gzip or zlib header is decoded anyway: that is what
// `tar cz … | curl --data-binary @- …` sends. At most 64 MiB of decoded
// bytes are scanned; beyond that, and on corrupt compressed data, decoding
// stops quietly and the body still passes through whole.
//
// Decoding runs in a goroutine fed through a pipe, since compress/flate
// only pulls: each Read hands its bytes to the decoder and returns once the
// decoder has taken them, so nothing is held back from the caller. The
// goroutine ends when r returns an error or EOF; if the reader is dropped
// before that, it ends when the reader is garbage collected.
func (s *Scanner) Body(r io.Reader, contentEncoding string) (io.Reader, func() (Hit, bool)) {
	b := &body{s: s, r: r, raw: s.NewStream(), state: new(bodyState)}
	b.layers, b.sniff = codings(contentEncoding)
	return b, b.state.get
}

// codings returns the encodings to undo, outermost first, and whether
// there are none to undo.
func codings(header string) (layers []string, none bool) {
	list := strings.Split(header, ",")
	for i := len(list) - 1; i >= 0; i-- {
		switch strings.ToLower(strings.TrimSpace(list[i])) {
		case "", "identity":
		case "gzip", "x-gzip":
			layers = append(layers, "gzip")
		case "deflate":
			layers = append(layers, "deflate")
		default:
			return layers, len(layers) == 0
		}
	}
	return layers, len(layers) == 0
}

type body struct {
	s     *Scanner
	r     io.Reader
	raw   *Stream
	state *bodyState

	layers []string // to undo, outermost first
	sniff  bool     // whether to look at the first bytes for a gzip or zlib header
	head   []byte   // the first bytes, while fewer than needed to sniff
	begun  bool     // whether the decoder has been started, or decided against

	pw   *io.PipeWriter // to the decoder; nil once it has stopped
	done chan struct{}  // closed when the decoder's goroutine ends
	end  bool
}

type bodyState struct {
	mu    sync.Mutex
	hit   Hit
	found bool
}

func (bs *bodyState) set(h Hit) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if !bs.found {
		bs.hit, bs.found = h, true
	}
}

func (bs *bodyState) get() (Hit, bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.hit, bs.found
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if h, ok := b.raw.Write(p[:n]); ok {
			b.state.set(h)
		}
		if !b.end {
			b.feed(p[:n])
		}
	}
	if err != nil {
		b.finish(err)
	}
	return n, err
}

// sniffLen is how many bytes decide whether an undeclared body is
// compressed.
const sniffLen = 3

// feed hands p to the decoder, starting it first if need be.
func (b *body) feed(p []byte) {
	if !b.begun {
		if len(b.head)+len(p) < sniffLen {
			b.head = append(b.head, p...)
			return
		}
		b.start(append(b.head, p[:sniffLen-len(b.head)]...))
		head := b.head
		b.head = nil
		b.write(head)
	}
	b.write(p)
}

func (b *body) write(p []byte) {
	if b.pw == nil || len(p) == 0 {
		return
	}
	if _, err := b.pw.Write(p); err != nil {
		b.pw = nil // the decoder stopped
	}
}

// start starts the decoder if the header asks for one or, if it names no
// coding, if the body starts with a gzip or zlib header.
func (b *body) start(magic []byte) {
	b.begun = true
	layers := b.layers
	if b.sniff {
		switch {
		case len(magic) >= 3 && magic[0] == 0x1f && magic[1] == 0x8b && magic[2] == 8:
			layers = []string{"gzip"}
		case len(magic) >= 2 && zlibHeader(magic[0], magic[1]):
			layers = []string{"deflate"}
		}
	}
	if len(layers) == 0 {
		return
	}
	pr, pw := io.Pipe()
	b.pw, b.done = pw, make(chan struct{})
	go b.s.decode(pr, layers, b.state, b.done)
	// The goroutine refers to neither b nor the caller's reader, so b can
	// be collected while the goroutine waits on the pipe.
	runtime.AddCleanup(b, func(pw *io.PipeWriter) { pw.CloseWithError(errAbandoned) }, pw)
}

// finish ends decoding at the end of r and waits for the decoder, so that
// the result is complete when Read returns the error.
func (b *body) finish(err error) {
	if b.end {
		return
	}
	b.end = true
	if !b.begun {
		b.start(b.head)
		b.write(b.head)
		b.head = nil
	}
	if b.pw != nil {
		if errors.Is(err, io.EOF) {
			err = nil // the decoder sees a plain EOF
		}
		b.pw.CloseWithError(err)
	}
	if b.done != nil {
		<-b.done
	}
}

// decode undoes layers on what arrives through pr and scans the result,
// up to maxDecoded bytes.
func (s *Scanner) decode(pr *io.PipeReader, layers []string, state *bodyState, done chan<- struct{}) {
	defer close(done)
	// Closing the pipe from this end makes the writer's next Write fail,
	// so that a body whose decoding stopped early is not fed any more.
	defer pr.Close()

	var r io.Reader = pr
	for _, l := range layers {
		var err error
		if r, err = decoder(l, r); err != nil {
			return
		}
	}
	st := s.NewStream()
	st.outer = strings.Join(layers, "+")
	buf := make([]byte, 32<<10)
	for total := 0; total < maxDecoded; {
		n, err := r.Read(buf[:min(len(buf), maxDecoded-total)])
		total += n
		if h, ok := st.Write(buf[:n]); ok {
			state.set(h)
			return
		}
		if err != nil {
			return
		}
	}
}

// decoder returns a reader that undoes coding on r.
func decoder(coding string, r io.Reader) (io.Reader, error) {
	if coding == "gzip" {
		return gzip.NewReader(r)
	}
	// HTTP's deflate is zlib (RFC 9110, 8.4.1.2), but some servers send
	// raw deflate; the first two bytes tell which.
	br := bufio.NewReader(r)
	if h, err := br.Peek(2); err == nil && zlibHeader(h[0], h[1]) {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

// zlibHeader reports whether a and b begin a zlib stream (RFC 1950): method
// 8, a window of at most 32 KiB, and a valid check.
func zlibHeader(a, b byte) bool {
	return a&0x0f == 8 && a>>4 <= 7 && (uint16(a)<<8|uint16(b))%31 == 0
}
