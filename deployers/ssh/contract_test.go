package ssh

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/deployers/deployertest"
	"github.com/immunity-app/immunity/deployers/ssh/sshtest"
)

func TestMain(m *testing.M) { deployertest.Main(m) }

// TestContract holds the ssh deployer to the shared deployer contract: hosts are base
// folders behind two real sshd servers, the app is started by the release's bin/restart.
func TestContract(t *testing.T) {
	env := sshtest.New(t)
	var servers []*sshtest.Server
	for i := 0; i < 2; i++ {
		srv, err := env.Start()
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, srv)
	}
	const keep = 3
	d := New(Options{Settings: func(deployers.Host) Settings {
		return Settings{
			KeyFile: env.KeyFile, KnownHosts: env.KnownHosts,
			Restart: []string{"bin/restart"}, HealthPath: deployertest.Health,
			Timeout: 20 * time.Second, Keep: keep,
		}
	}})
	t.Cleanup(func() { d.Close() })
	var seq atomic.Int64
	root := t.TempDir()
	deployertest.Run(t, deployertest.Harness{
		Deployer: d,
		Keep:     keep,
		NewHost: func(t *testing.T) deployers.Host {
			n := seq.Add(1)
			port := freePort(t)
			h := deployers.Host{
				App: deployertest.AppName, Region: "sandbox1", Name: fmt.Sprintf("host%d", n),
				Address: env.Address(servers[n%2]),
				Base:    filepath.Join(root, fmt.Sprintf("host%d", n)),
				Port:    port,
				URL:     fmt.Sprintf("http://127.0.0.1:%d", port),
			}
			if err := deployertest.WritePortFile(h); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := deployertest.StopRestarted(h); err != nil {
					t.Error(err)
				}
			})
			return h
		},
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
