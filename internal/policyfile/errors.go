package policyfile

import (
	"fmt"
	"sort"
	"strings"
)

// MaxErrors is how many problems Parse reports from one file; past that it
// says how many more there are.
const MaxErrors = 20

// Error is one problem in a policy file, at its place in the file.
type Error struct {
	File string
	Line int // from 1
	Col  int // from 1, in bytes
	Key  string
	Msg  string
}

// Error reads FILE:LINE:COL: KEY: MESSAGE, or without KEY for a problem
// of the TOML syntax itself.
func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Col, e.Key, e.Msg)
}

// Errors are the problems of one file, in the order they appear in it,
// one to a line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// capped sorts es by position and keeps MaxErrors of them, the last
// saying how many were left out.
func (es Errors) capped() Errors {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Col < es[j].Col
	})
	if len(es) <= MaxErrors {
		return es
	}
	more := len(es) - MaxErrors
	es = es[:MaxErrors:MaxErrors]
	last := es[MaxErrors-1]
	return append(es, &Error{File: last.File, Line: last.Line, Col: last.Col, Msg: fmt.Sprintf("and %d more problems; fix these first", more)})
}
