package ssh

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/immunity-app/immunity/deployers"
)

// wireForm is what actually travels to the hosts for one release: the artifact itself, or
// for an artifact gzip could not shrink (already-compressed payloads), the plain tar
// inside it. The bytes on the wire are the same size either way, and no host spends CPU
// inflating them (gzip -d costs about as much as the transfer itself on loopback).
type wireForm struct {
	path   string // file to send
	sum    string // its sha256, checked on the host
	gzip   bool   // whether the host must gunzip it
	remove bool   // path is ours to delete on Close
}

// forms caches the wire form of each release (by checksum) for the life of a Deployer.
type forms struct {
	dir string // where plain tars are written; "" = os.TempDir()
	mu  sync.Mutex
	m   map[string]*formOnce
}

type formOnce struct {
	once sync.Once
	form wireForm
	err  error
}

// incompressible: inflating the first sampleSize bytes of output consumed at least this
// fraction as many input bytes.
const (
	sampleSize    = 4 << 20
	incompressRat = 0.9
)

func (f *forms) get(rel deployers.Release) (wireForm, error) {
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]*formOnce{}
	}
	e := f.m[rel.Checksum]
	if e == nil {
		e = &formOnce{}
		f.m[rel.Checksum] = e
	}
	f.mu.Unlock()
	e.once.Do(func() { e.form, e.err = f.make(rel) })
	return e.form, e.err
}

func (f *forms) make(rel deployers.Release) (wireForm, error) {
	asIs := wireForm{path: rel.Artifact, sum: rel.Checksum, gzip: true}
	in, err := os.Open(rel.Artifact)
	if err != nil {
		return wireForm{}, fmt.Errorf("open artifact: %w", err)
	}
	defer in.Close()
	counted := &countingReader{r: in}
	zr, err := gzip.NewReader(counted)
	if err != nil {
		return wireForm{}, fmt.Errorf("artifact %s is not a gzipped tar: %w", rel.Artifact, err)
	}
	n, _ := io.CopyN(io.Discard, zr, sampleSize)
	if n < sampleSize || float64(counted.n) < incompressRat*float64(n) {
		return asIs, nil // small or compressible: send it as it is
	}
	return f.plainTar(rel)
}

// plainTar writes the tar inside the artifact to a temporary file, checking the artifact's
// checksum on the way (what the host checks is then this file's sha256).
func (f *forms) plainTar(rel deployers.Release) (wireForm, error) {
	in, err := os.Open(rel.Artifact)
	if err != nil {
		return wireForm{}, fmt.Errorf("open artifact: %w", err)
	}
	defer in.Close()
	gzSum := sha256.New()
	zr, err := gzip.NewReader(io.TeeReader(in, gzSum))
	if err != nil {
		return wireForm{}, err
	}
	out, err := os.CreateTemp(f.dir, "immunity-wire-*.tar")
	if err != nil {
		return wireForm{}, err
	}
	tarSum := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, tarSum), zr)
	if err == nil {
		_, err = io.Copy(gzSum, in) // the gzip trailer and anything after it
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && hex.EncodeToString(gzSum.Sum(nil)) != rel.Checksum {
		err = fmt.Errorf("artifact %s does not match its checksum %s", rel.Artifact, rel.Checksum)
	}
	if err != nil {
		os.Remove(out.Name())
		return wireForm{}, err
	}
	return wireForm{path: out.Name(), sum: hex.EncodeToString(tarSum.Sum(nil)), remove: true}, nil
}

// clear deletes the plain tars written.
func (f *forms) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.m {
		if e.form.remove {
			os.Remove(e.form.path)
		}
	}
	f.m = nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
