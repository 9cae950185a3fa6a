// Package gateway is the egress gateway: the one way out of a sandbox.
//
// It runs on the host side, in the cordon process, and serves an HTTP proxy
// (CONNECT for any TCP, absolute-form requests for plain HTTP) and SOCKS5
// (CONNECT only) on listening sockets that the sandbox's init made in the
// sandbox's own network namespace. Every connection is decided on its own:
//
//   - the host the client sent is canonicalised once ([ParseHost]): case,
//     trailing dot, IDNA, percent-encoding, every IPv4 spelling, mapped
//     IPv6; userinfo, zone ids and anything malformed are refused;
//   - the rules decide by name or by literal address ([Rules]): deny wins,
//     nothing matches by default, IP literals only by IP or CIDR rules;
//   - an allowed name is resolved here, on the host, and every address is
//     vetted ([Rules.CheckResolved], [Forbidden]): loopback, private,
//     link-local, metadata and this host's own addresses are refused unless
//     a rule names them; the vetted address is the one dialled;
//   - in a tunnel, a TLS hello must name the server that was allowed (and,
//     in an inspected one, each request's Host);
//   - a denial is answered with the rule and the flag that would allow it
//     (HTTP 403, SOCKS5 reply 2), and every decision is audited.
//
// # What it guarantees
//
// A connection leaves only to a destination the rules allow, at an address
// that passed the guard (or, with an upstream proxy, through that proxy,
// which then resolves names). Request heads are bounded in size and time,
// tunnels by an idle timeout and a cap on how many are open; Close ends
// every connection and returns when every goroutine has.
//
// # What it watches
//
// The run's watched tokens (canaries of the decoys, this host's credential
// values, injected secrets' placeholders and values: Config.Canaries and
// Config.Tokens) are looked for in host names, URLs, headers, plaintext
// bodies and the up direction of every tunnel, in every encoding the
// canary package knows; token formats (Config.Formats) in plain and
// inspected requests' heads and held bodies. For the destinations an
// InspectRule names, the gateway ends TLS itself (inspect.go) and sees
// each request; secrets are swapped in there (inject.go).
//
// # What it does not
//
// Inside TLS to a destination that is not inspected it sees nothing but
// the hello: what an allowed destination receives there is the command's
// business. Programs that ignore proxy settings get no way out at all
// rather than a transparent one.
package gateway
