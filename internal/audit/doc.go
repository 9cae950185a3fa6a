// Package audit writes and reads Cordon's audit log: JSON Lines, one event a
// line.
//
// A run's log holds a "start" event (command, workspace, policy digest,
// Cordon's version), one "connection" event for each connection the egress
// gateway decided (allowed or denied, with the deciding rule, the bytes each
// way and the error if any), and an "end" event with the exit status. Later
// kinds ("canary", "secret") use the same envelope and carry their own fields
// in Event.Detail; a reader keeps kinds it does not know.
//
//	l, err := audit.Open(path)
//	if err != nil {
//		return err
//	}
//	defer l.Close()
//	l.Write(audit.Event{Event: audit.KindStart, Command: argv, PolicyDigest: digest})
//
// # Where logs live
//
// One file a run, named by [DefaultPath]: <UTC start>-<pid>.jsonl in
// $XDG_STATE_HOME/cordon/audit, or ~/.local/state/cordon/audit. File names
// sort in time order, which [Logs] and [Prune] rely on.
//
// # What it guarantees
//
// Each event is marshalled whole and handed to the kernel in one write(2) on
// a file opened with O_APPEND, under a mutex: writers in one process, and
// several processes appending to one file, produce only whole lines. A
// process that crashes loses no event written before, and leaves at worst
// one partial line at the end, which [Read] tolerates and reports.
//
// # What it does not guarantee
//
// Write does not fsync (Close does): events still in the page cache are lost
// if the machine itself goes down. A write cut short by a full disk leaves a
// partial line that later events follow, which Read then rejects with its
// line number. The log is not tamper-evident: anything that can write the
// file (the user, or a sandbox whose workspace or --write paths include the
// log directory) can rewrite it.
package audit
