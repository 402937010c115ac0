package mgmtd

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/plinth/plinth/auth"
)

// Connection bounds (Config.MaxConns, Config.MaxConnsPerClient when 0).
const (
	DefaultMaxConns          = 512
	DefaultMaxConnsPerClient = 32
)

// A connection over a bound waits up to limitWait for one of its client's
// (or any) to close, which a client churning connections does all the
// time; at most maxWaiting wait at once, the rest are closed at once.
const (
	limitWait  = 2 * time.Second
	limitPoll  = 20 * time.Millisecond
	maxWaiting = 64
)

// limitListener bounds the connections open at once, in total and per
// client (auth.ClientKey: an IPv4 address, an IPv6 /64). A connection over
// either bound that does not get a place within limitWait is closed
// before its TLS handshake: one client cannot take every connection, nor
// many exhaust the process's descriptors.
type limitListener struct {
	inner            net.Listener
	total, perClient int
	refused          func(client string)

	conns  chan net.Conn
	errc   chan error
	closed chan struct{}
	close  sync.Once

	mu      sync.Mutex
	open    int
	waiting int
	perIP   map[string]int
}

func newLimitListener(l net.Listener, total, perClient int, refused func(string)) *limitListener {
	ll := &limitListener{inner: l, total: total, perClient: perClient, refused: refused,
		conns: make(chan net.Conn), errc: make(chan error, 1), closed: make(chan struct{}), perIP: map[string]int{}}
	go ll.acceptLoop()
	return ll
}

func (l *limitListener) Addr() net.Addr { return l.inner.Addr() }

func (l *limitListener) Close() error {
	err := l.inner.Close()
	l.close.Do(func() { close(l.closed) })
	return err
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		l.errc <- err // every later Accept fails the same way
		return nil, err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *limitListener) acceptLoop() {
	var pause time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.closed:
				l.errc <- err
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				l.errc <- err
				return
			}
			// Out of descriptors and the like: wait and try again, as
			// http.Server does, rather than stop serving.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			time.Sleep(pause)
			continue
		}
		pause = 0
		client := clientOf(c.RemoteAddr())
		if l.take(client) {
			l.deliver(c, client)
			continue
		}
		l.mu.Lock()
		wait := l.waiting < maxWaiting
		if wait {
			l.waiting++
		}
		l.mu.Unlock()
		if !wait {
			l.refuse(c, client)
			continue
		}
		go func() {
			defer func() { l.mu.Lock(); l.waiting--; l.mu.Unlock() }()
			for end := time.Now().Add(limitWait); time.Now().Before(end); {
				select {
				case <-l.closed:
					c.Close()
					return
				case <-time.After(limitPoll):
				}
				if l.take(client) {
					l.deliver(c, client)
					return
				}
			}
			l.refuse(c, client)
		}()
	}
}

func (l *limitListener) deliver(c net.Conn, client string) {
	lc := &limitedConn{Conn: c, release: sync.OnceFunc(func() { l.give(client) })}
	select {
	case l.conns <- lc:
	case <-l.closed:
		lc.Close()
	}
}

func (l *limitListener) refuse(c net.Conn, client string) {
	c.Close()
	if l.refused != nil {
		l.refused(client)
	}
}

func clientOf(a net.Addr) string {
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		host = a.String()
	}
	return auth.ClientKey(host)
}

func (l *limitListener) take(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.total || l.perIP[client] >= l.perClient {
		return false
	}
	l.open++
	l.perIP[client]++
	return true
}

func (l *limitListener) give(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perIP[client]--; l.perIP[client] <= 0 {
		delete(l.perIP, client)
	}
}

type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
