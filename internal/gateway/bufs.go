package gateway

import (
	"io"
	"sync"
	"sync/atomic"
)

// The relay's buffers are lent only while bytes move, so an idle
// connection holds none. A piece of a request or an answer goes through a
// small buffer; once a read fills one, the transfer is bulk and the next
// reads take large buffers, until a read finds no more than a small buffer
// holds.
//
// The size of the large ones is measured, not guessed (docs/BENCHMARKS.md,
// "Egress gateway"): on the machines Cordon is tested on, a download
// through the gateway moved at 0.4-0.75 of direct with reads of 64 KiB to
// 1 MiB and at 0.73-1.0 with 4 MiB, for up to half the CPU. At most maxBulk are
// lent at once (128 MiB); past that, transfers go on through small ones.
// The relay copies rather than splices: a read and a write cost half the
// CPU of Go's splice through its pipe there, and moved bytes faster.
const (
	smallBuf = 64 << 10
	bulkBuf  = 4 << 20
	maxBulk  = 32
)

var (
	smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	bulkBufs  = sync.Pool{New: func() any { b := make([]byte, bulkBuf); return &b }}
	bulkLent  atomic.Int32
)

// getBuf lends a large buffer if bulk is set and fewer than maxBulk are
// lent, else a small one. Give it back with putBuf.
func getBuf(bulk bool) *[]byte {
	if bulk {
		if bulkLent.Add(1) <= maxBulk {
			return bulkBufs.Get().(*[]byte)
		}
		bulkLent.Add(-1)
	}
	return smallBufs.Get().(*[]byte)
}

// putBuf takes back a buffer getBuf lent.
func putBuf(bp *[]byte) {
	if len(*bp) == bulkBuf {
		bulkBufs.Put(bp)
		bulkLent.Add(-1)
		return
	}
	smallBufs.Put(bp)
}

// nextBulk says whether the read after one that found n bytes in a buffer
// of size bytes should take a large buffer: yes once a read fills its
// buffer, and until one finds what a small buffer holds.
func nextBulk(bulk bool, n, size int) bool {
	if n == size {
		return true
	}
	return bulk && n > smallBuf
}

// copyBulk copies r to w until r ends (io.EOF is not an error) through
// lent buffers, as the relay does: one is held only for a read and the
// write after it, and it is large only while the transfer is bulk.
func copyBulk(w io.Writer, r io.Reader) (int64, error) {
	var total int64
	bulk := false
	for {
		bp := getBuf(bulk)
		n, err := r.Read(*bp)
		if n > 0 {
			m, werr := w.Write((*bp)[:n])
			total += int64(m)
			if werr != nil {
				putBuf(bp)
				return total, werr
			}
		}
		bulk = nextBulk(bulk, n, len(*bp))
		putBuf(bp)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
