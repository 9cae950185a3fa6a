// Package client is the Go client of Cordon's session API (`cordon serve`):
// create a session, exec in it with streamed output, move files in and out,
// read its events, delete it. The wire types in api.go are the API's own:
// the server uses them too.
package client
