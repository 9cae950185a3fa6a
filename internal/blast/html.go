package blast

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"sync"
)

//go:embed report.html.tmpl
var htmlSource string

// htmlPage is parsed the first time a page is written, not when the
// binary starts: every "cordon run" (and its sandbox's init, the same
// binary) would pay for it otherwise.
var htmlPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"pct":   func(points, weight float64) float64 { return math.Round(1000*points/weight) / 10 },
		"class": dotClass,
		"f1":    func(x float64) string { return fmt.Sprintf("%.1f", x) },
		"f0":    func(x float64) string { return fmt.Sprintf("%.0f", x) },
		"grade": grade,
	}).Parse(htmlSource))
})

// grade is the colour of a score: low (green), mid (amber), high (red).
func grade(score float64) string {
	switch {
	case score < 20:
		return "low"
	case score < 50:
		return "mid"
	}
	return "high"
}

// Geometry of the picture: the process at the centre, one band per ring
// outward, and around them a band for the names of the sectors, one per
// part of the score.
const (
	picSize   = 860.0
	picCentre = picSize / 2
	coreR     = 48.0 // the process
	bandW     = 80.0
	dotR      = 12.0
	minDotR   = 3.5
	dotGap    = 5.0
	// topGap is the angle left free at the top, where the rings' names go.
	topGap = 0.78
	// sectorGap is the angle between two sectors.
	sectorGap = 0.05
)

// WriteHTML writes the report as one self-contained HTML page: inline CSS
// and SVG, no script, nothing fetched.
func WriteHTML(w io.Writer, r *Report) error {
	return htmlPage().Execute(w, newView(r))
}

type view struct {
	*Report
	Size, Centre float64
	CoreR        float64
	Bands        []band
	Sectors      []sector
	Dots         []dot
	Groups       []group
	Inside       []Asset
	Counts       map[string]int
}

type band struct {
	Ring      Ring
	Label     string
	R0, R1    float64 // inner and outer radius
	LabelPath string  // an arc across the top gap for the ring's name
	Fill, Rim string
}

// sector is the wedge of one part of the score.
type sector struct {
	Name, Title  string
	A0, A1       float64 // angles, clockwise from the top, in radians
	LabelPath    string  // an arc for the name to run along
	Edge         [4]float64
	LabelTextLen int
}

type dot struct {
	Asset
	X, Y, R float64
	Class   string
	Label   bool // the id fits inside
	Font    float64
}

type group struct {
	Part
	Assets []Asset
}

var ringText = map[Ring]string{
	RingWorkspace: "WORKSPACE",
	RingHome:      "YOUR HOME",
	RingHost:      "THIS HOST",
	RingNetwork:   "NETWORK",
}

var ringColour = map[Ring][2]string{
	RingWorkspace: {"#fefce8", "#e5e3a1"},
	RingHome:      {"#f8fafc", "#cbd5e1"},
	RingHost:      {"#f1f5f9", "#cbd5e1"},
	RingNetwork:   {"#eef2ff", "#c7d2fe"},
}

// dotClass is the colour of an asset: in reach inside the sandbox; in
// reach only without it (a decoy stands in for it inside, or not); or out
// of reach either way.
func dotClass(a Asset) string {
	switch {
	case a.Policy.InReach():
		return "in"
	case a.NoSandbox.InReach() && a.Policy.State == "decoy":
		return "decoy"
	case a.NoSandbox.InReach():
		return "out"
	}
	return "none"
}

func newView(r *Report) *view {
	v := &view{Report: r, Size: picSize, Centre: picCentre, CoreR: coreR, Counts: map[string]int{}}
	for i, ring := range Rings {
		r0 := coreR + 8 + float64(i)*bandW
		label := ringText[ring]
		v.Bands = append(v.Bands, band{Ring: ring, Label: label, R0: r0, R1: r0 + bandW,
			LabelPath: arcPath(r0+bandW/2, -topGap/2, topGap/2),
			Fill:      ringColour[ring][0], Rim: ringColour[ring][1]})
	}
	v.Sectors, v.Dots = layout(r, v.Bands)
	for _, a := range r.Assets {
		v.Counts[dotClass(a)]++
		if a.Policy.InReach() {
			v.Inside = append(v.Inside, a)
		}
	}
	for _, p := range r.Parts {
		g := group{Part: p}
		for _, a := range r.Assets {
			if a.Part == p.Name {
				g.Assets = append(g.Assets, a)
			}
		}
		v.Groups = append(v.Groups, g)
	}
	return v
}

// rowRadius is the radius of row i of rows in band b.
func rowRadius(b band, i, rows int) float64 {
	return b.R0 + (float64(i)+0.5)*bandW/float64(rows)
}

// perRow is how many dots of radius r fit in span on a circle of radius
// rad.
func perRow(span, rad, r float64) int {
	return int(span * rad / (2*r + dotGap))
}

// need is the angle n dots of radius dotR take in band b, in as many rows
// as fit.
func need(n int, b band) float64 {
	if n == 0 {
		return 0
	}
	most := bandW / (2*dotR + dotGap)
	rows := min(int(most), n)
	perRow := math.Ceil(float64(n) / float64(rows))
	return perRow * (2*dotR + dotGap) / rowRadius(b, 0, rows)
}

// layout cuts the picture into one sector per part, each as wide as its
// busiest ring needs (and at least as wide as its name), and places each
// asset in its part's sector and its ring's band, in rows along arcs. The
// most exposed come first in a cell, so colours gather.
func layout(r *Report, bands []band) ([]sector, []dot) {
	cells := map[string]map[Ring][]Asset{}
	for _, a := range r.Assets {
		if cells[a.Part] == nil {
			cells[a.Part] = map[Ring][]Asset{}
		}
		cells[a.Part][a.Ring] = append(cells[a.Part][a.Ring], a)
	}
	labelR := bands[len(bands)-1].R1 + 16
	needs := make([]float64, len(r.Parts))
	total := 0.0
	for i, p := range r.Parts {
		// The name, at about 8 px a character, must fit along the arc.
		needs[i] = 8 * float64(len(p.Title)+2) / labelR
		for _, b := range bands {
			needs[i] = max(needs[i], need(len(cells[p.Name][b.Ring]), b))
		}
		total += needs[i]
	}
	avail := 2*math.Pi - topGap - sectorGap*float64(len(r.Parts)-1)
	spans := share(needs, avail)
	var sectors []sector
	var dots []dot
	a0 := topGap / 2
	for i, p := range r.Parts {
		span := spans[i]
		s := sector{Name: p.Name, Title: p.Title, A0: a0, A1: a0 + span}
		// The name runs along at most half the circle, centred on the
		// sector, so that it never reads upside down.
		mid, half := a0+span/2, min(span, 0.9*math.Pi)/2
		s.LabelPath = arcPath(labelR, mid-half, mid+half)
		x0, y0 := polar(bands[0].R0, s.A1+sectorGap/2)
		x1, y1 := polar(bands[len(bands)-1].R1, s.A1+sectorGap/2)
		s.Edge = [4]float64{x0, y0, x1, y1}
		sectors = append(sectors, s)
		for _, b := range bands {
			dots = append(dots, cell(cells[p.Name][b.Ring], b, s.A0, span)...)
		}
		a0 += span + sectorGap
	}
	return sectors, dots
}

// share divides avail among sectors that need needs: each gets what it
// needs when all fit, and the extra is spread evenly; when they do not,
// the ones that need less than an even share get what they need and the
// others split the rest evenly (their dots then shrink).
func share(needs []float64, avail float64) []float64 {
	spans := make([]float64, len(needs))
	total := 0.0
	for _, n := range needs {
		total += n
	}
	if total <= avail {
		extra := (avail - total) / float64(len(needs))
		for i, n := range needs {
			spans[i] = n + extra
		}
		return spans
	}
	open := map[int]bool{}
	for i := range needs {
		open[i] = true
	}
	left := avail
	for len(open) > 0 {
		even := left / float64(len(open))
		fixed := false
		for i := range open {
			if needs[i] <= even {
				spans[i] = needs[i]
				left -= needs[i]
				delete(open, i)
				fixed = true
			}
		}
		if !fixed {
			for i := range open {
				spans[i] = even
			}
			break
		}
	}
	return spans
}

// cell places assets in band b between angles a0 and a0+span.
func cell(assets []Asset, b band, a0, span float64) []dot {
	if len(assets) == 0 {
		return nil
	}
	order := map[string]int{"in": 0, "out": 1, "decoy": 2, "none": 3}
	sorted := append([]Asset(nil), assets...)
	sort.SliceStable(sorted, func(i, j int) bool { return order[dotClass(sorted[i])] < order[dotClass(sorted[j])] })
	n := len(sorted)
	// The largest dots, in the fewest rows, that fit.
	rows, r := fit(n, b, span)
	per := int(math.Ceil(float64(n) / float64(rows)))
	var dots []dot
	for k, a := range sorted {
		row, col := k/per, k%per
		inRow := min(per, n-row*per)
		rad := rowRadius(b, row, rows)
		theta := a0 + span*(float64(col)+0.5)/float64(inRow)
		x, y := polar(rad, theta)
		d := dot{Asset: a, X: x, Y: y, R: r, Class: dotClass(a), Label: r >= 8}
		d.Font = 11
		if a.ID >= 100 {
			d.Font = 9
		}
		dots = append(dots, d)
	}
	return dots
}

// fit returns the rows and dot radius for n dots in band b across span:
// the largest dots that fit, in the fewest rows; the smallest dots, as
// many rows as the band holds, when none do.
func fit(n int, b band, span float64) (int, float64) {
	for r := dotR; r >= minDotR; r -= 0.5 {
		most := int(bandW / (2*r + dotGap))
		for rows := 1; rows <= most; rows++ {
			if perRow(span, rowRadius(b, 0, rows), r)*rows >= n {
				return min(rows, n), r
			}
		}
	}
	most := bandW / (2*minDotR + dotGap)
	return max(1, int(most)), minDotR
}

// polar is the point at radius rad and angle theta, clockwise from the
// top.
func polar(rad, theta float64) (float64, float64) {
	return round1(picCentre + rad*math.Sin(theta)), round1(picCentre - rad*math.Cos(theta))
}

// arcPath is an SVG path along the circle of radius rad from a0 to a1,
// drawn so that text on it reads left to right: clockwise over the top
// half, anticlockwise under the bottom half.
func arcPath(rad, a0, a1 float64) string {
	mid := (a0 + a1) / 2
	large := 0
	if a1-a0 > math.Pi {
		large = 1
	}
	if math.Cos(mid) >= 0 || a1-a0 > math.Pi {
		x0, y0 := polar(rad, a0)
		x1, y1 := polar(rad, a1)
		return fmt.Sprintf("M %g %g A %g %g 0 %d 1 %g %g", x0, y0, rad, rad, large, x1, y1)
	}
	// Under the bottom the glyphs hang below the path: lift it by their
	// height so they sit in the same band.
	rad += 9
	x0, y0 := polar(rad, a1)
	x1, y1 := polar(rad, a0)
	return fmt.Sprintf("M %g %g A %g %g 0 %d 0 %g %g", x0, y0, rad, rad, large, x1, y1)
}
