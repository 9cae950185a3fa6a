package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/internal/audit"
	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/policy"
)

// testResolver, when set, replaces the host's resolver in the gateway. Only
// a binary built with the cordon_testhooks tag sets it (testhooks.go): the
// integration tests point test names at their loopback servers with it.
var testResolver gateway.Resolver

// keepAuditLogs is how many runs' logs the default audit directory keeps.
const keepAuditLogs = 500

// egress is one run's gateway and audit log.
type egress struct {
	gw  *gateway.Gateway
	log *audit.Log
}

// startEgress parses the network policy and makes the gateway and the audit
// log; the gateway serves once the sandbox hands it its sockets.
func startEgress(p policy.Policy, auditPath string, argv []string, logf func(string, ...any), al *alarm, w *watch) (*egress, error) {
	var rules gateway.Rules
	for _, s := range p.Network.Allow {
		r, err := gateway.ParseRule(s)
		if err != nil {
			return nil, fmt.Errorf("--allow-domain %s: %w", s, err)
		}
		rules.Allow = append(rules.Allow, r)
	}
	// The hosts a secret is for are allowed by naming them (--deny-domain
	// still wins).
	for _, s := range w.allow {
		r, err := gateway.ParseRule(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("--secret: %w", err)
		}
		rules.Allow = append(rules.Allow, r)
	}
	for _, s := range p.Network.Deny {
		r, err := gateway.ParseRule(s)
		if err != nil {
			return nil, fmt.Errorf("--deny-domain %s: %w", s, err)
		}
		rules.Deny = append(rules.Deny, r)
	}
	var up *url.URL
	if p.Network.Upstream != "" {
		u, err := gateway.ParseUpstream(p.Network.Upstream)
		if err != nil {
			return nil, fmt.Errorf("--upstream-proxy: %w", err)
		}
		up = u
	}

	var log *audit.Log
	if auditPath != "none" {
		path := auditPath
		if path == "" {
			var err error
			if path, err = audit.DefaultPath(time.Now(), os.Getpid()); err != nil {
				return nil, fmt.Errorf("audit log: %w (name one with --audit FILE, or --audit none)", err)
			}
		}
		l, err := audit.Open(path)
		if err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		log = l
		logf("audit log %s", path)
		if auditPath == "" {
			go audit.Prune(filepathDir(path), keepAuditLogs)
		}
	}
	digest, err := policyDigest(p)
	if err != nil {
		log.Close()
		return nil, err
	}
	log.Write(audit.Event{Event: audit.KindStart, PolicyDigest: digest, Command: argv, Workspace: p.Workspace, Version: version})

	cfg := gateway.Config{
		Rules:    rules,
		Upstream: up,
		Resolver: testResolver,
		Audit:    log,
		Log:      logf,
	}
	if al != nil {
		cfg.OnCanary = al.onCanary
	}
	cfg.Canaries = w.scanner
	cfg.Tokens = w.tokens
	cfg.Formats = w.formats
	cfg.OnSecret = (&secretReport{}).onSecret
	cfg.Inspect = w.inspect
	cfg.Inject = w.inject
	if w.ca != nil {
		cfg.CA = w.ca // Roots stay nil: the host's own trust store
	}
	gw, err := gateway.New(cfg)
	if err != nil {
		log.Close()
		return nil, err
	}
	return &egress{gw: gw, log: log}, nil
}

// serve is sandbox.Options.Serve: the gateway's two protocols on their
// ports inside.
func (e *egress) serve(port uint16, l net.Listener) {
	switch port {
	case gateway.HTTPPort:
		go e.gw.ServeHTTP(l)
	case gateway.SOCKSPort:
		go e.gw.ServeSOCKS(l)
	default:
		l.Close()
	}
}

// finish ends every connection, and closes the log with the run's end.
func (e *egress) finish(status int, runErr error) {
	e.gw.Close()
	ev := audit.Event{Event: audit.KindEnd}
	if runErr != nil {
		ev.Error = runErr.Error()
	} else {
		ev.ExitCode = &status
	}
	e.log.Write(ev)
	e.log.Close()
}

func filepathDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "."
}

// policyDigest names the effective policy in the audit log: a change to
// any wall changes it.
func policyDigest(p policy.Policy) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("hashing the policy: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
