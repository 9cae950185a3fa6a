package blast

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const chromium = "/usr/bin/chromium"

func TestHTMLSelfContained(t *testing.T) {
	r := newFixture(t).compute(t, true)
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	// Nothing fetched, nothing run: no script, no external reference.
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "@import", "url(", "http://", "https://", "javascript:"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
	// One dot per asset, each linking to its row.
	dots := regexp.MustCompile(`<a href="#a(\d+)"><circle class="dot (in|out|decoy|none)"`).FindAllStringSubmatch(page, -1)
	if len(dots) != len(r.Assets) {
		t.Errorf("%d dots in the picture, want one for each of the %d assets", len(dots), len(r.Assets))
	}
	for _, a := range r.Assets {
		if !strings.Contains(page, `<tr id="a`+strconv.Itoa(a.ID)+`">`) {
			t.Errorf("no row for asset %d", a.ID)
		}
	}
	for _, want := range []string{"With no sandbox", "Inside cordon", "Still in reach inside the sandbox", "How the score is computed", "WORKSPACE", "NETWORK"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// TestHTMLRendersInChromium renders the page of a synthetic host in
// headless Chromium, keeps the screenshot (under $CORDON_TEST_ARTIFACTS
// when set) and checks it shows the picture: several colours, the dots'
// red and amber among them.
func TestHTMLRendersInChromium(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s not found (Debian's chromium package): %v", chromium, err)
	}
	f := newFixture(t)
	// Something in reach inside too: a named destination and a --write.
	f.p.Network.Allow = []string{"registry.npmjs.org", "proxy.golang.org"}
	f.p.Writable = []string{f.home + "/bin"}
	r := f.compute(t, true)

	dir := os.Getenv("CORDON_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(dir, "blast-radius.html")
	shot := filepath.Join(dir, "blast-radius.png")
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(shot)

	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--screenshot="+shot, "--window-size=1280,1600",
		"file://"+page)
	// Its own process group, so that the chromium started here, and
	// only it, is killed with all its helpers on a timeout. Its home is
	// the temporary profile: it leaves nothing in the user's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "HOME="+profile, "XDG_CONFIG_HOME="+profile+"/config", "XDG_CACHE_HOME="+profile+"/cache")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	// Helpers chromium left behind in its group go too.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("chromium took over 90s and was killed; its output:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("chromium: %v; its output:\n%s", err, out.String())
	}
	t.Logf("screenshot: %s (page: %s)", shot, page)

	fh, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v; chromium said:\n%s", err, out.String())
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	if got := img.Bounds().Size(); got != (image.Point{1280, 1600}) {
		t.Errorf("screenshot is %v, want 1280x1600", got)
	}
	colours := map[[3]uint8]int{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y += 2 {
		for x := bounds.Min.X; x < bounds.Max.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}]++
		}
	}
	if len(colours) < 16 {
		t.Errorf("the screenshot has %d colours: blank or unstyled", len(colours))
	}
	// The dots' colours, as the style sheet gives them: the picture is
	// there, not just text.
	for name, want := range map[string][3]uint8{"red (in reach inside)": {0xdc, 0x26, 0x26}, "amber (only without a sandbox)": {0xf5, 0x9e, 0x0b}} {
		if n := near(colours, want, 6); n < 50 {
			t.Errorf("the screenshot has %d pixels of the %s dots' colour, want a picture with such dots", n, name)
		}
	}
}

// near counts the pixels within tol of c on each channel.
func near(colours map[[3]uint8]int, c [3]uint8, tol int) int {
	n := 0
	for k, count := range colours {
		ok := true
		for i := range k {
			if d := int(k[i]) - int(c[i]); d < -tol || d > tol {
				ok = false
			}
		}
		if ok {
			n += count
		}
	}
	return n
}
