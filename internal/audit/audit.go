package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Event kinds.
const (
	KindStart      = "start"
	KindConnection = "connection"
	// KindRequest is one HTTP request inside an inspected tunnel (the
	// tunnel itself is a connection event): Proto "https", Decision, and
	// Detail "method", "path" (no query) and, if answered, "status".
	KindRequest = "request"
	KindEnd     = "end"
	// KindTruncated is never written: Read appends it, with the line number
	// in Detail["line"], when the log ends in a partial line.
	KindTruncated = "truncated"
)

// Decisions of a connection event.
const (
	Allow = "allow"
	Deny  = "deny"
)

// Event is one line of the log. Fields that do not belong to its kind are
// left empty and omitted.
type Event struct {
	Time  time.Time `json:"time"`  // UTC, RFC 3339 with nanoseconds
	Event string    `json:"event"` // "start", "connection", "request", "end", "canary", "secret"; unknown kinds round-trip too

	// start
	PolicyDigest string   `json:"policy_digest,omitempty"` // "sha256:<hex>"
	Command      []string `json:"command,omitempty"`
	Workspace    string   `json:"workspace,omitempty"`
	Version      string   `json:"version,omitempty"`

	// connection
	Proto      string  `json:"proto,omitempty"`       // "http", "connect", "socks5"
	Host       string  `json:"host,omitempty"`        // as canonicalised by the gateway
	Port       int     `json:"port,omitempty"`        //
	Addr       string  `json:"addr,omitempty"`        // resolved address dialled, "" if none
	Decision   string  `json:"decision,omitempty"`    // "allow" or "deny"
	Rule       string  `json:"rule,omitempty"`        // text of the deciding rule
	Reason     string  `json:"reason,omitempty"`      //
	BytesUp    int64   `json:"bytes_up,omitempty"`    // sandbox → destination
	BytesDown  int64   `json:"bytes_down,omitempty"`  // destination → sandbox
	DurationMS float64 `json:"duration_ms,omitempty"` //
	Error      string  `json:"error,omitempty"`       //

	// end
	ExitCode *int `json:"exit_code,omitempty"`

	// Detail carries kind-specific extra fields for later event kinds.
	Detail map[string]string `json:"detail,omitempty"`
}

// Log appends events to a file. Safe for concurrent use. Each event is one
// write(2) of one line, so a crash loses no earlier event and never leaves
// half a line before another.
type Log struct {
	path string
	mu   sync.Mutex
	f    *os.File
	sink func(Event) // instead of f: NewSink
}

// NewSink is a log that hands each event, its time set, to f instead of
// writing it to a file: a session's events go to its stream this way. f is
// called under the log's lock, one event at a time, in time order.
func NewSink(f func(Event)) *Log { return &Log{sink: f} }

// Open opens the log at path for appending, creating it with mode 0600 and
// its missing parent directories with mode 0700.
func Open(path string) (*Log, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating audit log directory: %w", err)
	}
	// O_APPEND makes each write land at the end even when another process
	// appends to the same file. os.OpenFile adds O_CLOEXEC itself: the log
	// must not leak into a sandbox.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening audit log: %w", err)
	}
	return &Log{path: path, f: f}, nil
}

// Write appends e as one line. A zero e.Time is set to now; every time is
// written in UTC. Writing to a nil *Log does nothing, so callers that may
// run without a log need no checks. The error is returned, not logged: the
// caller decides whether an event that could not be recorded may proceed.
func (l *Log) Write(e Event) error {
	if l == nil {
		return nil
	}
	if e.Event == "" {
		return fmt.Errorf("writing audit event: no kind")
	}
	// Time is taken under the lock so that the file's order is time order
	// for events that leave it to Write.
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	if l.sink != nil {
		l.sink(e)
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("writing audit event %s: %w", e.Event, err)
	}
	// One Write of the whole line: one write(2), which on a regular file
	// is not interleaved with another append.
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("writing audit event %s: %w", e.Event, err)
	}
	return nil
}

// Path is the file the log writes to; "" for a nil *Log.
func (l *Log) Path() string {
	if l == nil {
		return ""
	}
	return l.path
}

// Close flushes the log to disk and closes it. Closing a nil *Log does
// nothing.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	serr := l.f.Sync()
	cerr := l.f.Close()
	if cerr != nil {
		return fmt.Errorf("closing audit log: %w", cerr)
	}
	if serr != nil {
		return fmt.Errorf("syncing audit log: %w", serr)
	}
	return nil
}

// StateDir is Cordon's state directory, $XDG_STATE_HOME/cordon, or
// ~/.local/state/cordon: the audit logs and the trust store
// (internal/trust) live there. A relative XDG_STATE_HOME is ignored, as the
// XDG spec says.
func StateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "cordon"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding cordon's state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "cordon"), nil
}

// DefaultDir is $XDG_STATE_HOME/cordon/audit, or ~/.local/state/cordon/audit.
func DefaultDir() (string, error) {
	dir, err := StateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "audit"), nil
}

// fileTime is the layout of the time in a log's name: it sorts as the time
// does.
const fileTime = "20060102T150405Z"

// DefaultPath names one run's log in DefaultDir:
// <UTC time as 20060102T150405Z>-<pid>.jsonl.
func DefaultPath(now time.Time, pid int) (string, error) {
	dir, err := DefaultDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%d.jsonl", now.UTC().Format(fileTime), pid)), nil
}

// logName matches the names DefaultPath makes. Logs and Prune look at those
// only, so that a file the user put in the directory is neither taken for
// the newest log nor deleted.
var logName = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9]+\.jsonl$`)

// Logs lists the logs in dir named as DefaultPath names them, oldest first,
// as full paths. A missing dir has no logs.
func Logs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing audit logs: %w", err)
	}
	var logs []string
	for _, e := range ents {
		if e.Type().IsRegular() && logName.MatchString(e.Name()) {
			logs = append(logs, filepath.Join(dir, e.Name()))
		}
	}
	// ReadDir sorts by name already; sort again so the order is this
	// function's promise, not an accident of another's.
	sort.Strings(logs)
	return logs, nil
}

// Prune removes the oldest *.jsonl files in dir beyond keep (by name order,
// which is time order); errors on individual files are ignored. Only files
// named as DefaultPath names them count; keep <= 0 removes them all.
func Prune(dir string, keep int) error {
	logs, err := Logs(dir)
	if err != nil {
		return err
	}
	keep = max(keep, 0)
	if len(logs) <= keep {
		return nil
	}
	for _, p := range logs[:len(logs)-keep] {
		os.Remove(p) // best effort: a log another run still holds open goes when its inode does
	}
	return nil
}

// LineError is a line of a log that is not an event.
type LineError struct {
	Line int // from 1
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Read parses a log. Malformed lines are errors that name the line number,
// as a *LineError. A last line without its newline that does not parse is
// taken for a write cut short by a crash: Read then ends the events with one
// of kind KindTruncated, which Summarize reports. Blank lines are skipped;
// fields Read does not know are ignored.
func Read(r io.Reader) ([]Event, error) {
	br := bufio.NewReader(r)
	var events []Event
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading audit log: line %d: %w", n, err)
		}
		last := err != nil
		if len(bytes.TrimSpace(line)) > 0 {
			e, perr := parseLine(line)
			switch {
			case perr == nil:
				events = append(events, e)
			case last:
				// Write ends every line with '\n', so an unterminated line
				// that does not parse is a prefix of one.
				events = append(events, Event{Event: KindTruncated, Detail: map[string]string{"line": strconv.Itoa(n)}})
			default:
				return nil, &LineError{Line: n, Err: perr}
			}
		}
		if last {
			return events, nil
		}
	}
}

func parseLine(line []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(line, &e); err != nil {
		return Event{}, fmt.Errorf("not an event: %w", err)
	}
	if e.Event == "" {
		return Event{}, fmt.Errorf(`not an event: no "event" field`)
	}
	return e, nil
}
