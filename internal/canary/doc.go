// Package canary finds a run's canary tokens in bytes leaving the sandbox, raw or encoded.
//
// The sandbox's credential stores hold decoys, and each decoy carries a
// token made afresh for the run. A token has no use but to be noticed: if
// it shows up in what a contained program sends out, a decoy was read and
// is leaving. The egress gateway hands this package every host name, URL,
// header and body on its way out:
//
//	s, err := canary.New(tokens)
//	if err != nil {
//		return err
//	}
//	if hit, ok := s.ScanString(host); ok {
//		// hit.Token is out, spelled as hit.Encoding ("raw", "base64", ...)
//	}
//
//	st := s.NewStream() // one per direction of a connection
//	for ... {
//		if hit, ok := st.Write(piece); ok { ... }
//	}
//
//	body, seen := s.Body(req.Body, req.Header.Get("Content-Encoding"))
//	io.Copy(upstream, body)
//	if hit, ok := seen(); ok { ... }
//
// # What it finds
//
// A token as planted, and its spellings: hex (either case), base64
// (standard and URL-safe alphabets, padded or not), base32 (standard and
// extended-hex alphabets, either case), at whatever offset the token sat
// in the data that was encoded — the whole of ~/.aws/credentials
// base64-encoded gives the token away. Then, in the data normalised (see
// normalizer in normalize.go): any of these percent-encoded, wholly or in
// part (A%4BIA…, base64 with %2B %2F %3D); wrapped into lines (base64(1),
// PEM, xxd -p); pasted into a JSON string (\n between lines, \/ for /).
// [Scanner.Body] undoes gzip and deflate, declared by Content-Encoding,
// stacked, or undeclared but announced by the body's first bytes, and
// scans what comes out the same way. A [Stream] finds a token split across
// writes (TCP segments, HTTP chunks, a client's buffer flushes) anywhere,
// and a percent escape split across them too.
//
// The Encoding of a [Hit] names the layers undone, outermost first:
// "gzip+url+base64" is base64 of the token, percent-escaped in part, in a
// gzip body. A spelling two encodings share (URL-safe and standard base64
// agree unless the encoding holds + / - _) is named after the first.
//
// # How
//
// New spells each token in every encoding at every alignment (raw, hex,
// 3 base64 alignments in 2 alphabets, 5 base32 alignments in 2), keeping
// of each only the characters that the token's own bytes decide. All the
// spellings are then looked for in one pass by a sampling filter rather
// than an Aho-Corasick automaton (see Scanner.build): the shortest
// spelling is at least MinTokenLen bytes, so reading one 8-byte gram every
// (shortest − 7) bytes meets every occurrence, and a bitset of the
// spellings' gram hashes rejects nearly all samples with one load and a
// multiply. The data is scanned as sent, and then, only where normalising
// changes it, normalised. On one core of a shared development machine,
// 1 MiB with nothing to find scans at about 1.2 GB/s for random bytes and
// 1 GB/s for source code with the decoys' 20- to 40-byte tokens; a 12-byte
// token shortens the stride to 5 and costs about a third more. Base64 data
// scans at 2-5 GB/s, data percent-encoded throughout at about 200 MB/s,
// and data made of near misses of the tokens' spellings, the worst case, at
// 250-700 MB/s.
//
// # What it does not find
//
//   - Nested encodings: hex of base64, base64 of base64, base64 of gzip
//     (a gzip body is decoded; gzip data inside base64 or JSON is not),
//     percent-encoding applied twice (%254B).
//   - Encryption, and any transform not listed: XOR, ROT13, reversal,
//     quoted-printable, UTF-16, HTML entities, JSON \u escapes.
//   - Compression other than gzip and deflate (br, zstd, bzip2, xz, zip
//     archives), and gzip that does not start the body (an upload inside
//     multipart/form-data, a .tar.gz in a JSON field).
//   - Separators other than line breaks: hex with spaces or colons
//     ("41 4b 49 41", hexdump -C), base32 cut into DNS labels, a token
//     broken by a line break after fewer than 16 characters of the
//     encodings' alphabets (a raw token wrapped by hand).
//   - A raw or base64 spelling whose case was changed: base64 and raw
//     tokens are matched exactly (hex and base32 in any case).
//   - A token sent in pieces over different connections or requests, or
//     a few characters at a time in separate header values.
//   - Anything inside TLS: the gateway scans what it can see in the clear.
//   - Decoded bodies past 64 MiB: decoding stops there quietly (a
//     decompression bomb is not an error); the bytes as sent are still
//     scanned in full.
//
// A contained program that read a decoy can always disguise a token
// beyond this list; the scanner catches the ordinary ways data leaves, and
// the careless ones.
package canary
