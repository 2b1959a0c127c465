package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// registry is a docker-registry process and a TCP proxy in front of it that
// counts the bytes clients send, which is what "uploaded" means in the table.
type registry struct {
	Host     string // the proxy's 127.0.0.1:port, what clients use
	cmd      *exec.Cmd
	exited   chan struct{}
	listener net.Listener
	sent     atomic.Int64
	active   atomic.Int64
	conns    sync.WaitGroup
}

func startRegistry(ctx context.Context, bin, dir string, verbose bool) (*registry, error) {
	backend, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"+
		"storage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "storage"), backend)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	r := &registry{cmd: exec.CommandContext(ctx, bin, "serve", cfgPath), exited: make(chan struct{})}
	if verbose {
		r.cmd.Stderr = os.Stderr // it logs every 404 of a blob check at level error
	}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start docker-registry: %w", err)
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	if err := r.waitReady(ctx, backend); err != nil {
		r.stop()
		return nil, err
	}
	if r.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		r.stop()
		return nil, err
	}
	r.Host = r.listener.Addr().String()
	go r.serveProxy(backend)
	return r, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

func (r *registry) waitReady(ctx context.Context, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.exited:
			return errors.New("docker-registry exited at start")
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("docker-registry did not answer on %s", addr)
}

// serveProxy forwards each connection to the backend. io.Copy between TCP
// connections splices in the kernel, so the proxy costs little CPU.
func (r *registry) serveProxy(backend string) {
	for {
		client, err := r.listener.Accept()
		if err != nil {
			return
		}
		r.active.Add(1)
		r.conns.Go(func() {
			defer r.active.Add(-1)
			r.forward(client, backend)
		})
	}
}

func (r *registry) forward(client net.Conn, backend string) {
	defer func() { _ = client.Close() }()
	server, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer func() { _ = server.Close() }()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(client, server)
		_ = client.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	n, _ := io.Copy(server, client)
	r.sent.Add(n)
	_ = server.(*net.TCPConn).CloseWrite()
	<-done
}

// Sent is the number of bytes clients have sent so far. It is called between
// runs of client processes: their connections are closing, and a connection's
// bytes are added when it ends, so it first waits (up to 5 s) for none to be open.
func (r *registry) Sent() int64 {
	for deadline := time.Now().Add(5 * time.Second); r.active.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return r.sent.Load()
}

func (r *registry) stop() {
	if r.listener != nil {
		_ = r.listener.Close()
	}
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}
