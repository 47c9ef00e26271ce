package judge

import (
	"fmt"
	"math"
	"sync"

	"gonum.org/v1/gonum/stat/distuv"
)

// Sequential looks: a group-sequential design with an alpha-spending function
// (Lan & DeMets). A one-sided test of level a is looked at after each interval; by
// information time t (0..1] the test may have spent spend(t) of a, and never more, so
// the chance of a false alarm over every look together stays at a. The boundary of each
// look is found exactly for the joint (Brownian motion) distribution of the cumulative
// statistics, by numerical integration over the region where no earlier look stopped
// (Armitage, McPherson & Rowe; Jennison & Turnbull ch. 19). No Go library offers it.

// Spending names an alpha-spending function.
type Spending string

const (
	// OBrienFleming spends little alpha early: only a clearly bad canary stops early,
	// and the final look keeps almost all of its power.
	OBrienFleming Spending = "obrien-fleming"
	// Pocock spends alpha evenly: earlier stops, less power at the end.
	Pocock Spending = "pocock"
)

// Balanced is the default spending, Hwang-Shih-DeCani with γ = -2: it keeps nearly all
// of O'Brien-Fleming's power at the end of the window and stops a clearly bad canary
// about a third sooner (bench/judge measures both).
var Balanced = HwangShihDeCani(-2)

// HwangShihDeCani is the spending family α·(1-e^(-γt))/(1-e^(-γ)): γ = -4 is close to
// O'Brien-Fleming, γ = 1 to Pocock; written "hsd:γ".
func HwangShihDeCani(gamma float64) Spending { return Spending(fmt.Sprintf("hsd:%g", gamma)) }

func (sp Spending) spent(a, t float64) float64 {
	if t <= 0 {
		return 0
	}
	if t >= 1 {
		return a
	}
	if sp == Pocock {
		return a * math.Log(1+(math.E-1)*t)
	}
	var g float64
	if _, err := fmt.Sscanf(string(sp), "hsd:%g", &g); err == nil {
		if g == 0 {
			return a * t
		}
		return a * (1 - math.Exp(-g*t)) / (1 - math.Exp(-g))
	}
	z := distuv.UnitNormal.Quantile(1 - a/2)
	return 2 * distuv.UnitNormal.Survival(z/math.Sqrt(t))
}

const gridN = 161 // Simpson grid points for the sub-density (odd)

// boundary is one level's sequence of looks. Looks that spend nothing are not part of
// the recursion: they cannot stop, so they do not change where the statistic may be.
type boundary struct {
	alpha    float64
	spending Spending
	spent    float64   // alpha spent so far
	tau      float64   // information time of the last look that spent alpha
	grid     []float64 // points of the sub-density of W(tau) where no look stopped
	dens     []float64 // the sub-density times the Simpson weight; never changed in place
	key      string    // the looks so far, for the cache
}

// boundaryCache remembers looks already computed: every window of the same plan has the
// same boundaries, and computing one look costs about a millisecond.
var boundaryCache = struct {
	sync.Mutex
	m map[string]cachedLook
}{m: map[string]cachedLook{}}

type cachedLook struct {
	after boundary
	z     float64
}

const maxCachedLooks = 20000

func newBoundary(alpha float64, sp Spending) *boundary {
	return &boundary{alpha: alpha, spending: sp, key: fmt.Sprintf("%v|%s", alpha, sp)}
}

// next adds a look (see look), through the cache.
func (b *boundary) next(tau, s float64) float64 {
	key := fmt.Sprintf("%s|%v,%v", b.key, tau, s)
	boundaryCache.Lock()
	c, ok := boundaryCache.m[key]
	boundaryCache.Unlock()
	if ok {
		*b = c.after
		return c.z
	}
	z := b.look(tau, s)
	b.key = key
	boundaryCache.Lock()
	if len(boundaryCache.m) < maxCachedLooks {
		boundaryCache.m[key] = cachedLook{after: *b, z: z}
	}
	boundaryCache.Unlock()
	return z
}

// look adds a look at information time tau (for the correlation of looks) that may spend
// up to spend(s) in total, and returns the look's critical z (+Inf: it cannot stop).
func (b *boundary) look(tau, s float64) float64 {
	inc := b.spending.spent(b.alpha, s) - b.spent
	if inc <= 1e-15 || tau <= b.tau {
		return math.Inf(1)
	}
	dt := tau - b.tau
	sd := math.Sqrt(dt)
	cross := func(c float64) float64 { // P(no earlier stop, W(tau) >= c)
		if b.grid == nil {
			return distuv.UnitNormal.Survival(c / sd)
		}
		p := 0.0
		for i, u := range b.grid {
			p += b.dens[i] * distuv.UnitNormal.Survival((c-u)/sd)
		}
		return p
	}
	lo, hi := -10*math.Sqrt(tau), 12*math.Sqrt(tau)
	if cross(hi) > inc {
		return math.Inf(1)
	}
	for range 48 {
		mid := (lo + hi) / 2
		if cross(mid) > inc {
			lo = mid
		} else {
			hi = mid
		}
	}
	c := hi
	b.spent += cross(c)
	b.advance(tau, c)
	return c / math.Sqrt(tau)
}

// advance moves the sub-density from the last look to W(tau) restricted to (-inf, c).
func (b *boundary) advance(tau, c float64) {
	sd := math.Sqrt(tau - b.tau)
	lo := -9 * math.Sqrt(tau)
	if lo >= c {
		lo = c - 1
	}
	h := (c - lo) / float64(gridN-1)
	grid := make([]float64, gridN)
	dens := make([]float64, gridN)
	for k := range grid {
		w := lo + float64(k)*h
		f := 0.0
		if b.grid == nil {
			f = phi(w/sd) / sd
		} else {
			for i, u := range b.grid {
				f += b.dens[i] * phi((w-u)/sd) / sd
			}
		}
		grid[k], dens[k] = w, f*simpson(k, h)
	}
	b.grid, b.dens, b.tau = grid, dens, tau
}

func phi(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }

func simpson(k int, h float64) float64 {
	switch {
	case k == 0 || k == gridN-1:
		return h / 3
	case k%2 == 1:
		return 4 * h / 3
	default:
		return 2 * h / 3
	}
}

// survival is the standard normal upper tail, P(Z > z).
func survival(z float64) float64 { return distuv.UnitNormal.Survival(z) }
