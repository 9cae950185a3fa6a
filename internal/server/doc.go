// Package server is the HTTP side of `cordon serve`: the /v1 session API
// (docs/api.md), /metrics, and the listeners it is served on.
//
// A Server is an http.Handler over a session.Manager. Every request body
// is bounded (JSON 1 MiB, files and archives 1 GiB unless the Options say
// otherwise) and JSON is read strictly: an unknown field, a second value
// or a body too large is a 4xx with a client.Error, never a partial
// change. Malformed session and exec ids are refused before any lookup.
//
// # Exec streams
//
// POST /v1/sessions/{id}/exec answers with newline-delimited JSON
// (application/x-ndjson), one client.ExecFrame a line, flushed as the
// process writes: "started", then "stdout" and "stderr" frames in the
// order their bytes were read, then "exit". Stdin, terminal size and
// signals go in their own small requests that name the exec. A client
// that goes away mid-stream gets its exec's process group killed: no
// process outlives the request that watches it, unless the session does.
//
// # Authentication
//
// On a unix socket (Listen "unix://PATH") access is the socket's file
// permission: mode 0660, owned by the group the operator names. On TCP,
// Options.Token is required of every request, /metrics included, as
// "Authorization: Bearer TOKEN", compared in constant time. The server
// does not decide which applies: the caller sets Token for a TCP
// listener (cordon serve refuses TCP without one).
package server
