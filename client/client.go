package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// MaxFrameLine is the longest line of an exec or event stream the client
// reads. The server's frames carry at most 64 KiB of output, base64
// encoded; the margin is for events with long fields.
const MaxFrameLine = 4 << 20

// Client talks to one `cordon serve`. It is safe for concurrent use.
type Client struct {
	addr  string // as given, for messages
	base  string // scheme://host, with no path
	hc    *http.Client
	token string
}

// Option configures a Client.
type Option func(*options)

type options struct {
	token string
	hc    *http.Client
	tls   *tls.Config
}

// WithToken sends "Authorization: Bearer TOKEN" with every request, as a
// server listening on TCP requires.
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithHTTPClient uses hc for every request. With a unix address or
// WithTLSConfig, hc's Transport must be nil or an *http.Transport: the
// client uses a copy of it that dials the socket or uses that TLS
// configuration.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.hc = hc }
}

// WithTLSConfig sets the TLS configuration for https:// addresses; with it,
// a tcp:// address is spoken to over TLS too.
func WithTLSConfig(c *tls.Config) Option {
	return func(o *options) { o.tls = c }
}

// New returns a client of the server at addr: "unix:///path/to.sock",
// "tcp://host:port" (plain HTTP, or TLS with WithTLSConfig), or
// "http://host:port" / "https://host:port". It connects only when a
// method is called. Proxy settings of the environment are not used.
func New(addr string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	u, err := url.Parse(addr)
	if err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server address %q: want unix:///path/to.sock, tcp://host:port or https://host:port", addr)
	}
	var sock, base string
	switch u.Scheme {
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("server address %q: a unix socket is named by its absolute path, as in unix:///run/cordon/cordon.sock", addr)
		}
		sock = u.Path
		// The host part of the URL is never dialled; it only names
		// the server in the request's Host header.
		base = "http://cordon"
	case "tcp", "http", "https":
		if u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("server address %q: want %s://host:port, with no path", addr, u.Scheme)
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil && u.Scheme == "tcp" {
			return nil, fmt.Errorf("server address %q: want tcp://host:port", addr)
		}
		scheme := u.Scheme
		if scheme == "tcp" {
			scheme = "http"
			if o.tls != nil {
				scheme = "https"
			}
		}
		if scheme == "http" && o.tls != nil {
			return nil, fmt.Errorf("server address %q: a TLS configuration was given for plain HTTP: use https:// or tcp://", addr)
		}
		base = scheme + "://" + u.Host
	default:
		return nil, fmt.Errorf("server address %q: want unix:///path/to.sock, tcp://host:port or https://host:port", addr)
	}

	hc := &http.Client{}
	if o.hc != nil {
		c := *o.hc
		hc = &c
	}
	if o.hc == nil || sock != "" || o.tls != nil {
		var tr *http.Transport
		switch t := hc.Transport.(type) {
		case nil:
			tr = http.DefaultTransport.(*http.Transport).Clone()
			tr.Proxy = nil
		case *http.Transport:
			tr = t.Clone()
		default:
			return nil, fmt.Errorf("client options: a unix socket or a TLS configuration needs an *http.Transport in the HTTP client, not %T", t)
		}
		if sock != "" {
			var d net.Dialer
			tr.Proxy = nil
			tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", sock)
			}
		}
		if o.tls != nil {
			tr.TLSClientConfig = o.tls.Clone()
		}
		hc.Transport = tr
	}
	// The API never redirects: an answer that does is shown as it is,
	// and the token goes nowhere else.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{addr: addr, base: base, hc: hc, token: o.token}, nil
}

// APIError is an answer of the server that is not a success: its HTTP
// status and the body's client.Error.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("cordon serve: %s (HTTP %d %s)", printable(e.Message), e.Status, printable(e.Code))
}

// IsNotFound reports whether err is the server saying that the session (or
// the exec, or the file) does not exist.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// IsConflict reports whether err is the server refusing a request that
// does not fit the state of what it names (a resize without a terminal, an
// exec in a stopping session).
func IsConflict(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusConflict
}

// printable replaces control characters, so that a message from the
// server cannot drive the terminal it is printed on.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, s)
}

// codes are the Error codes the server uses for each status, for an
// answer whose body is not a client.Error (a proxy's, say).
var codes = map[int]string{
	http.StatusBadRequest:            "bad_request",
	http.StatusUnauthorized:          "unauthorized",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "too_large",
	http.StatusServiceUnavailable:    "unavailable",
	http.StatusInternalServerError:   "internal",
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if err := json.Unmarshal(b, &e); err == nil && e.Message != "" {
		return &APIError{Status: resp.StatusCode, Code: e.Code, Message: e.Message}
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" || len(msg) > 512 {
		msg = http.StatusText(resp.StatusCode)
	}
	code := codes[resp.StatusCode]
	if code == "" {
		code = "http_" + strconv.Itoa(resp.StatusCode)
	}
	return &APIError{Status: resp.StatusCode, Code: code, Message: msg}
}

// request is one call of the API. path is below /v1 and already escaped.
type request struct {
	method, path string
	query        url.Values
	body         io.Reader // nil: none
	contentType  string
}

// do sends r and returns the answer if its status is 2xx; otherwise the
// answer's error, as an *APIError.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	// An empty, "." or ".." id would name another route, or none.
	if path.Clean(r.path) != r.path {
		return nil, fmt.Errorf("an empty or dot-only id in %s: ids are like s-abcdefghijklmnopqrst", r.path)
	}
	u := c.base + "/v1" + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	body := r.body
	length := int64(0)
	switch b := body.(type) {
	case nil:
		body = http.NoBody
	case *bytes.Reader:
		length = int64(b.Len())
	case *bytes.Buffer:
		length = int64(b.Len())
	case *strings.Reader:
		length = int64(b.Len())
	default:
		// The caller's reader is the caller's to close (os.Stdin, say),
		// and its length is unknown: the body goes chunked, as it
		// comes.
		body = io.NopCloser(b)
		length = -1
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("cordon serve at %s: %w", c.addr, err)
	}
	req.ContentLength = length
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach cordon serve at %s: %w", c.addr, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// call sends in (if not nil) as JSON and decodes the answer into out (if
// not nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	r := request{method: method, path: path, query: query}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		r.body, r.contentType = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("cordon serve at %s: reading the answer to %s %s: %w", c.addr, method, path, err)
	}
	return nil
}

// sessionPath is /sessions/ID followed by more, with ID escaped so that
// whatever the caller passes stays one path segment (a malformed ID is
// then the server's 400, never another route).
func sessionPath(id string, more ...string) string {
	p := "/sessions/" + url.PathEscape(id)
	for _, m := range more {
		p += "/" + url.PathEscape(m)
	}
	return p
}

// pathQuery is ?path=P, which every file operation takes.
func pathQuery(p string) url.Values { return url.Values{"path": {p}} }

// Health asks whether the server is up, and which runtimes it can run.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.call(ctx, http.MethodGet, "/health", nil, nil, &h)
	return h, err
}

// Create starts a session. The answer is the session, running.
func (c *Client) Create(ctx context.Context, req CreateRequest) (Session, error) {
	var s Session
	err := c.call(ctx, http.MethodPost, "/sessions", nil, req, &s)
	return s, err
}

// Get says what the server knows of session id: running, or stopped a
// short while ago (then Reason says why).
func (c *Client) Get(ctx context.Context, id string) (Session, error) {
	var s Session
	err := c.call(ctx, http.MethodGet, sessionPath(id), nil, nil, &s)
	return s, err
}

// List returns the running and recently stopped sessions whose labels
// include every one of labels (all of them when labels is empty).
func (c *Client) List(ctx context.Context, labels map[string]string) ([]Session, error) {
	var q url.Values
	if len(labels) > 0 {
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		q = url.Values{}
		for _, k := range keys {
			q.Add("label", k+"="+labels[k])
		}
	}
	var l List
	if err := c.call(ctx, http.MethodGet, "/sessions", q, nil, &l); err != nil {
		return nil, err
	}
	return l.Sessions, nil
}

// Delete ends session id and returns once everything of it is gone.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, sessionPath(id), nil, nil, nil)
}

// SetTimeout makes session id end req.TTL from now (and replaces its idle
// timeout if req.IdleTimeout is set).
func (c *Client) SetTimeout(ctx context.Context, id string, req TimeoutRequest) (Session, error) {
	var s Session
	err := c.call(ctx, http.MethodPost, sessionPath(id, "timeout"), nil, req, &s)
	return s, err
}

// Resize sets the terminal size of exec execID (started with TTY).
func (c *Client) Resize(ctx context.Context, id, execID string, rows, cols uint16) error {
	return c.call(ctx, http.MethodPost, sessionPath(id, "execs", execID, "resize"), nil, ResizeRequest{Rows: rows, Cols: cols}, nil)
}

// Signal sends sig ("SIGINT", "INT" or "2") to exec execID's process group.
func (c *Client) Signal(ctx context.Context, id, execID, sig string) error {
	return c.call(ctx, http.MethodPost, sessionPath(id, "execs", execID, "signal"), nil, SignalRequest{Signal: sig}, nil)
}

// SendStdin streams r to the stdin of exec execID, started with
// StdinStream, and closes that stdin when r ends. It returns when the
// server has taken all of r, or when ctx ends. r is not closed.
func (c *Client) SendStdin(ctx context.Context, id, execID string, r io.Reader) error {
	resp, err := c.do(ctx, request{method: http.MethodPost, path: sessionPath(id, "execs", execID, "stdin"),
		body: r, contentType: "application/octet-stream"})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// WriteFile writes r to the file path (absolute, inside session id),
// making its parents; the file is replaced at once when r has been read
// whole. mode is its permission bits; 0 leaves the server's default
// (0644). r is not closed.
func (c *Client) WriteFile(ctx context.Context, id, path string, r io.Reader, mode fs.FileMode) error {
	q := pathQuery(path)
	if mode != 0 {
		q.Set("mode", fmt.Sprintf("%04o", uint32(mode.Perm())))
	}
	resp, err := c.do(ctx, request{method: http.MethodPut, path: sessionPath(id, "files"), query: q,
		body: r, contentType: "application/octet-stream"})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ReadFile opens the regular file path inside session id. The caller
// closes it.
func (c *Client) ReadFile(ctx context.Context, id, path string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: sessionPath(id, "files"), query: pathQuery(path)})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Stat describes path inside session id, without following a final
// symbolic link.
func (c *Client) Stat(ctx context.Context, id, path string) (FileInfo, error) {
	var fi FileInfo
	err := c.call(ctx, http.MethodGet, sessionPath(id, "files", "stat"), pathQuery(path), nil, &fi)
	return fi, err
}

// ListDir lists the directory path inside session id.
func (c *Client) ListDir(ctx context.Context, id, path string) (DirList, error) {
	var l DirList
	err := c.call(ctx, http.MethodGet, sessionPath(id, "files", "list"), pathQuery(path), nil, &l)
	return l, err
}

// PutArchive extracts the tar stream r into directory dir (absolute,
// inside session id; made if missing). The server checks every entry
// first: if one is bad (absolute, "..", a link out of dir, a device, too
// large), it refuses the whole archive and changes nothing. r is not
// closed.
func (c *Client) PutArchive(ctx context.Context, id, dir string, r io.Reader) error {
	resp, err := c.do(ctx, request{method: http.MethodPut, path: sessionPath(id, "archive"), query: pathQuery(dir),
		body: r, contentType: "application/x-tar"})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// GetArchive returns the contents of directory dir inside session id as a
// tar stream, names relative to dir. The caller closes it.
func (c *Client) GetArchive(ctx context.Context, id, dir string) (io.ReadCloser, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: sessionPath(id, "archive"), query: pathQuery(dir)})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// lines reads an NDJSON stream one line at a time.
type lines struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

func newLines(body io.ReadCloser) *lines {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), MaxFrameLine)
	return &lines{body: body, sc: sc}
}

// next returns the next non-empty line, io.EOF at the end.
func (l *lines) next() ([]byte, error) {
	for l.sc.Scan() {
		if b := bytes.TrimSpace(l.sc.Bytes()); len(b) > 0 {
			return b, nil
		}
	}
	if err := l.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("a line longer than %d bytes", MaxFrameLine)
		}
		return nil, err
	}
	return nil, io.EOF
}

// ExecStream is the stream of frames of one exec, for callers that want
// the frames themselves; Exec is simpler.
type ExecStream struct {
	l   *lines
	end bool
}

// ExecStream starts req in session id and returns its frames. Unless req
// asks for a terminal, stdout and stderr come as separate frames, in the
// order the server read them. The caller closes the stream; closing it
// before the exit frame leaves the server to end the process.
func (c *Client) ExecStream(ctx context.Context, id string, req ExecRequest) (*ExecStream, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: sessionPath(id, "exec"),
		body: bytes.NewReader(b), contentType: "application/json"})
	if err != nil {
		return nil, err
	}
	return &ExecStream{l: newLines(resp.Body)}, nil
}

// Next returns the next frame. After the last frame ("exit" or "error")
// it returns io.EOF; a stream that ends before its last frame is an error
// wrapping io.ErrUnexpectedEOF.
func (s *ExecStream) Next() (ExecFrame, error) {
	if s.end {
		return ExecFrame{}, io.EOF
	}
	b, err := s.l.next()
	if err == io.EOF {
		return ExecFrame{}, fmt.Errorf("exec stream: the server ended it before the exit frame: %w", io.ErrUnexpectedEOF)
	}
	if err != nil {
		return ExecFrame{}, fmt.Errorf("exec stream: %w", err)
	}
	var f ExecFrame
	if err := json.Unmarshal(b, &f); err != nil {
		return ExecFrame{}, fmt.Errorf("exec stream: a frame that is not one JSON object: %w", err)
	}
	if f.Type == FrameExit || f.Type == FrameError {
		s.end = true
	}
	return f, nil
}

// Close ends the stream.
func (s *ExecStream) Close() error { return s.l.body.Close() }

// ExecIO is where Exec takes input from and puts output.
type ExecIO struct {
	// Stdout and Stderr receive the output as it comes; nil discards
	// it. With a terminal everything comes to Stdout.
	Stdout, Stderr io.Writer
	// Stdin, if set, is streamed to the process (ExecRequest.StdinStream
	// is then set) in a second request once the exec has started; the
	// process's stdin is closed when Stdin ends. Exec does not close
	// Stdin, and may return while a Read of it is still blocked (a
	// terminal): that Read's data is then lost.
	Stdin io.Reader
	// Resize, if set, sends the terminal's new sizes (with TTY).
	Resize <-chan ResizeRequest
	// OnStart, if set, is called once the process has started, before
	// any output is written.
	OnStart func(execID string, pid int)
}

// ExitResult is how an exec ended.
type ExitResult struct {
	ExecID string
	// Code is the exit status: the process's own, 128+N if signal N
	// ended it, 127 if the command was not found, 126 if it could not be
	// executed.
	Code int
	// Signal is the signal that ended it ("SIGKILL"), if one did.
	Signal string
	// Timeout says that ExecRequest.Timeout ended it.
	Timeout bool
	// Error says why it did not run (with Code 126 or 127).
	Error string
	// StdinErr is why ExecIO.Stdin could not be sent whole while the
	// process ran, if it could not; the process may then have seen
	// less input than given.
	StdinErr error
}

// Exec runs req in session id: output is written to eio's writers as it
// comes, and the answer says how the process ended. The error is not nil
// only if the exec could not be started or followed to its end (the
// command's own failures, even "not found", are an ExitResult). Ending ctx
// closes the stream.
func (c *Client) Exec(ctx context.Context, id string, req ExecRequest, eio ExecIO) (ExitResult, error) {
	if eio.Stdin != nil {
		req.StdinStream = true
	}
	stdout, stderr := eio.Stdout, eio.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.ExecStream(ctx, id, req)
	if err != nil {
		return ExitResult{}, err
	}
	defer s.Close()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		stdinErr error
		res      ExitResult
	)
	// The goroutines end when ctx does, at the latest when Exec returns.
	defer wg.Wait()
	defer cancel()
	for {
		f, err := s.Next()
		if err != nil {
			return ExitResult{}, err
		}
		switch f.Type {
		case FrameStarted:
			res.ExecID = f.ExecID
			if eio.OnStart != nil {
				eio.OnStart(f.ExecID, f.Pid)
			}
			if eio.Stdin != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := c.SendStdin(ctx, id, f.ExecID, eio.Stdin)
					// Once the exec has ended (ctx is cancelled
					// then, or the server no longer knows it), what
					// was not sent had no reader.
					if err == nil || ctx.Err() != nil || IsNotFound(err) || IsConflict(err) {
						return
					}
					mu.Lock()
					stdinErr = err
					mu.Unlock()
				}()
			}
			if eio.Resize != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case r, ok := <-eio.Resize:
							if !ok {
								return
							}
							// A resize that fails (the exec has just
							// ended) changes nothing worth an error.
							_ = c.Resize(ctx, id, f.ExecID, r.Rows, r.Cols)
						case <-ctx.Done():
							return
						}
					}
				}()
			}
		case FrameStdout, FrameStderr:
			w := stdout
			if f.Type == FrameStderr {
				w = stderr
			}
			if _, err := w.Write(f.Data); err != nil {
				return ExitResult{}, fmt.Errorf("writing the output of %s: %w", res.ExecID, err)
			}
		case FrameExit:
			if f.ExitCode == nil {
				return ExitResult{}, fmt.Errorf("exec stream: an exit frame without exit_code")
			}
			res.Code, res.Signal, res.Timeout, res.Error = *f.ExitCode, f.Signal, f.Timeout, f.Error
			cancel()
			wg.Wait()
			mu.Lock()
			res.StdinErr = stdinErr
			mu.Unlock()
			return res, nil
		case FrameError:
			return ExitResult{}, fmt.Errorf("cordon serve: the exec could not start: %s", printable(f.Error))
		}
		// Other frame types are a later server's: skipped.
	}
}

// EventStream is the stream of a session's events.
type EventStream struct{ l *lines }

// Events returns the events of session id so far; with follow, the stream
// then goes on with new ones until the session ends or ctx does. The
// caller closes it.
func (c *Client) Events(ctx context.Context, id string, follow bool) (*EventStream, error) {
	var q url.Values
	if follow {
		q = url.Values{"follow": {"1"}}
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: sessionPath(id, "events"), query: q})
	if err != nil {
		return nil, err
	}
	return &EventStream{l: newLines(resp.Body)}, nil
}

// Next returns the next event; io.EOF at the end of the stream. Numbers
// are json.Number, so that they print back as they came.
func (s *EventStream) Next() (Event, error) {
	b, err := s.l.next()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("event stream: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var e Event
	if err := d.Decode(&e); err != nil {
		return nil, fmt.Errorf("event stream: an event that is not one JSON object: %w", err)
	}
	return e, nil
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.l.body.Close() }
