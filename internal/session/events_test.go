package session

import (
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/audit"
)

func TestHubHistoryIsBounded(t *testing.T) {
	h := newHub(3)
	for i := range 5 {
		h.publish(client.Event{"n": i})
	}
	past, sub := h.subscribe(false)
	if sub != nil {
		t.Error("a subscription without follow")
	}
	if len(past) != 3 || past[0]["n"] != 2 || past[2]["n"] != 4 {
		t.Errorf("past = %v, want the last 3, oldest first", past)
	}
}

func TestHubDropsASlowFollower(t *testing.T) {
	h := newHub(10)
	_, slow := h.subscribe(true)
	_, fast := h.subscribe(true)
	// publish never waits: the slow follower, which reads nothing, is
	// dropped when its buffer is full; the fast one, which reads each
	// event as it comes, keeps every one.
	total := subscriberBuffer + 10
	for i := range total {
		h.publish(client.Event{"n": i})
		if e := <-fast.C; e["n"] != i {
			t.Fatalf("the fast follower got %v, want event %d", e, i)
		}
	}
	if !slow.Dropped() {
		t.Error("a follower that read nothing was not dropped")
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != subscriberBuffer {
		t.Errorf("the slow follower got %d events before the drop, want its buffer's %d", n, subscriberBuffer)
	}
	if fast.Dropped() {
		t.Error("the fast follower was dropped")
	}
	h.close()
	if _, ok := <-fast.C; ok {
		t.Error("a follower's stream goes on after close")
	}
	fast.Close() // after close: no panic
	slow.Close()
}

func TestAuditEvent(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	e := auditEvent("s-x", audit.Event{Time: at, Event: audit.KindConnection, Proto: "connect", Host: "pypi.org", Port: 443, Decision: audit.Deny, Rule: "default deny"})
	want := client.Event{"time": "2025-01-02T03:04:05.000000006Z", "event": "connection", "proto": "connect", "host": "pypi.org",
		"port": float64(443), "decision": "deny", "rule": "default deny", "session": "s-x"}
	if len(e) != len(want) {
		t.Errorf("auditEvent = %v, want %v", e, want)
	}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("auditEvent[%s] = %v, want %v", k, e[k], v)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\134y`: `/x\y`, `/end\04`: `/end\04`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	h := newHistogram([]float64{1, 2})
	for _, v := range []float64{0.5, 1, 1.5, 3} {
		h.observe(v)
	}
	// le is inclusive: 1 falls in the first bucket.
	if h.counts[0] != 2 || h.counts[1] != 1 || h.counts[2] != 1 || h.count != 4 || h.sum != 6 {
		t.Errorf("histogram %+v", h)
	}
}
