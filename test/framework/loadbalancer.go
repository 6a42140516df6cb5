package framework

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// LoadBalancer stands in for a Service in front of webhook replicas: it
// accepts TCP connections on 127.0.0.1 and forwards each to the next backend
// in turn, skipping a backend that refuses the connection, as kube-proxy
// does once a dead pod leaves the endpoints. TLS passes through untouched.
type LoadBalancer struct {
	Addr string

	listener net.Listener
	backends []string
	next     atomic.Uint64
	wg       sync.WaitGroup
	cancel   context.CancelFunc
}

// StartLoadBalancer forwards to backends (host:port) until Stop or ctx ends.
func StartLoadBalancer(ctx context.Context, backends ...string) (*LoadBalancer, error) {
	if len(backends) == 0 {
		return nil, errors.New("load balancer: no backends")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	lb := &LoadBalancer{Addr: l.Addr().String(), listener: l, backends: backends, cancel: cancel}
	lb.wg.Add(1)
	go func() {
		defer lb.wg.Done()
		<-ctx.Done()
		_ = l.Close()
	}()
	lb.wg.Add(1)
	go lb.serve(ctx)
	return lb, nil
}

func (lb *LoadBalancer) serve(ctx context.Context) {
	defer lb.wg.Done()
	for {
		conn, err := lb.listener.Accept()
		if err != nil {
			return
		}
		lb.wg.Add(1)
		go func() {
			defer lb.wg.Done()
			lb.forward(ctx, conn)
		}()
	}
}

func (lb *LoadBalancer) forward(ctx context.Context, client net.Conn) {
	defer client.Close()
	var backend net.Conn
	start := lb.next.Add(1)
	for i := range uint64(len(lb.backends)) {
		addr := lb.backends[(start+i)%uint64(len(lb.backends))]
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			backend = c
			break
		}
	}
	if backend == nil {
		return
	}
	defer backend.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tcp, ok := dst.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	select {
	case <-done:
		<-done
	case <-ctx.Done():
	}
}

// Stop closes the listener and every forwarded connection's goroutines.
func (lb *LoadBalancer) Stop() {
	lb.cancel()
	lb.wg.Wait()
}
