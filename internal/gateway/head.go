package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strings"
)

// head is an HTTP/1 request head as a proxy client sent it.
type head struct {
	method, target, proto string
	header                textproto.MIMEHeader
	// host is the Host header, "" if absent; more than one is an error.
	host string
}

// headError is a request head Cordon refuses to read further, with the
// status that says why.
type headError struct {
	status int
	msg    string
}

func (e *headError) Error() string { return e.msg }

func badHead(format string, args ...any) error {
	return &headError{status: 400, msg: fmt.Sprintf(format, args...)}
}

// maxHeaderLines caps the header lines of one request.
const maxHeaderLines = 128

// readHead reads one request head from br: at most MaxHeaderBytes, each
// line shorter than br's buffer. It is strict where laxity lets a proxy
// and a server disagree on what a request says: no obsolete line folding,
// no space before a header's colon, no control characters, one Host.
// io.EOF means the client closed the connection between requests.
func readHead(br *bufio.Reader) (*head, error) {
	budget := MaxHeaderBytes
	line := func() ([]byte, error) {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, &headError{status: 431, msg: "request line or header too long"}
		}
		if err != nil {
			return nil, err
		}
		budget -= len(b)
		if budget < 0 {
			return nil, &headError{status: 431, msg: "request head too large"}
		}
		b = bytes.TrimSuffix(b[:len(b)-1], []byte{'\r'})
		for _, c := range b {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return nil, badHead("control character in the request head")
			}
		}
		return b, nil
	}

	// Empty lines before the request line are allowed (RFC 9112 2.2).
	var first []byte
	for n := 0; ; n++ {
		b, err := line()
		if err != nil {
			if errors.Is(err, io.EOF) && n == 0 {
				return nil, io.EOF
			}
			if errors.Is(err, io.EOF) {
				return nil, badHead("connection closed inside a request head")
			}
			return nil, err
		}
		if len(b) > 0 {
			first = b
			break
		}
		if n > 8 {
			return nil, badHead("empty lines instead of a request")
		}
	}
	parts := strings.Split(string(first), " ")
	if len(parts) != 3 {
		return nil, badHead("malformed request line")
	}
	h := &head{method: parts[0], target: parts[1], proto: parts[2], header: textproto.MIMEHeader{}}
	if !isToken(h.method) {
		return nil, badHead("malformed method")
	}
	if h.target == "" || strings.ContainsAny(h.target, "\t") {
		return nil, badHead("malformed request target")
	}
	if h.proto != "HTTP/1.1" && h.proto != "HTTP/1.0" {
		return nil, &headError{status: 505, msg: "only HTTP/1.0 and HTTP/1.1 are spoken here"}
	}
	hosts := 0
	for n := 0; ; n++ {
		b, err := line()
		if errors.Is(err, io.EOF) {
			return nil, badHead("connection closed inside a request head")
		}
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			break
		}
		if n >= maxHeaderLines {
			return nil, &headError{status: 431, msg: "too many header lines"}
		}
		if b[0] == ' ' || b[0] == '\t' {
			return nil, badHead("obsolete line folding in a header")
		}
		name, value, ok := bytes.Cut(b, []byte{':'})
		if !ok || !isToken(string(name)) {
			return nil, badHead("malformed header line")
		}
		key := textproto.CanonicalMIMEHeaderKey(string(name))
		v := string(bytes.Trim(value, " \t"))
		if key == "Host" {
			hosts++
			if hosts > 1 {
				return nil, badHead("more than one Host header")
			}
			h.host = v
			continue
		}
		h.header[key] = append(h.header[key], v)
	}
	return h, nil
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// hasToken reports whether a comma-separated header holds token t.
func hasToken(values []string, t string) bool {
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), t) {
				return true
			}
		}
	}
	return false
}
