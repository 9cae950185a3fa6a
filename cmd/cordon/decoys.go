package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/user"
	"sync"

	"github.com/cordon-sandbox/cordon/internal/decoy"
	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/sandbox"
)

// ExitCanary is `cordon run`'s exit status when a decoy credential tried to
// leave and the run was stopped (--on-canary=stop, the default).
const ExitCanary = 86

// decoys is one run's decoy credentials and what watches for them.
type decoys struct {
	files    map[string][]sandbox.DecoyFile // by masked path
	canaries map[string]decoy.Canary        // by token
}

// makeDecoys makes the run's decoys, with fresh canary tokens.
func makeDecoys(home string) (*decoys, error) {
	name := "dev"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	set, canaries, err := decoy.Generate(home, name, rand.Reader)
	if err != nil {
		return nil, err // it says "making decoys" itself
	}
	d := &decoys{files: map[string][]sandbox.DecoyFile{}, canaries: map[string]decoy.Canary{}}
	for _, dc := range set {
		for _, f := range dc.Files {
			d.files[dc.Mask] = append(d.files[dc.Mask], sandbox.DecoyFile{Rel: f.Rel, Mode: f.Mode, Content: f.Content})
		}
	}
	for _, c := range canaries {
		d.canaries[c.Token] = c
	}
	return d, nil
}

// alarm is the gateway's OnCanary: it tells the user, on cordon's own
// stderr (never inside the sandbox), and with stop set, stops the run once.
type alarm struct {
	d    *decoys
	stop func()
	once sync.Once
	hit  bool
	mu   sync.Mutex
}

func (a *alarm) onCanary(proto, hostport string, t *gateway.Tripped) {
	a.mu.Lock()
	a.hit = true
	a.mu.Unlock()
	what := "a decoy credential"
	if c, ok := a.d.canaries[t.Hit.Token]; ok {
		what = fmt.Sprintf("the decoy %s from %s", c.Kind, c.Where)
	}
	fmt.Fprintf(os.Stderr, "cordon: ALARM: %s was sent toward %s (%s, in the %s, %s encoding); it was blocked.\n"+
		"cordon: ALARM: the contained command read a masked credential store and tried to send it out: it may have been told to steal your keys.\n",
		what, hostport, proto, t.Where, t.Hit.Encoding)
	if a.stop != nil {
		a.once.Do(func() {
			fmt.Fprintf(os.Stderr, "cordon: ALARM: stopping the run (exit status %d); --on-canary=block keeps it going\n", ExitCanary)
			a.stop()
		})
	}
}

func (a *alarm) tripped() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hit
}
