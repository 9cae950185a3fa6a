package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// MinPids is the lowest process limit other than none: it leaves room for
// the sandbox's init, a Go program with a handful of threads, which the
// limit counts like everything else in the sandbox.
const MinPids = 32

// ParseSize reads a memory size: 512M, 4G, 1.5G, 1048576 (bytes); K, M, G,
// T are powers of 1024, with an optional trailing B or iB. It is what
// --memory and a policy file's limits.memory take.
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := float64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v > 0) {
		return 0, fmt.Errorf("not a size (like 512M or 4G)")
	}
	if v*mult > 1<<50 {
		return 0, fmt.Errorf("larger than any machine")
	}
	n := int64(v * mult)
	if n < 1<<20 {
		return 0, fmt.Errorf("below 1M, too small to start anything")
	}
	return n, nil
}

// FormatSize writes n bytes the way ParseSize reads them, in the largest
// unit that divides it: 4G, 1536M, 1048577.
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if n > 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
