package auth

import (
	"fmt"
	"strings"
	"time"

	"github.com/plinth/plinth/api"
)

// Websocket tickets: a browser cannot set an Authorization header on a
// websocket, and a bearer token in the URL ends up in logs and histories,
// where it can be read and replayed for hours. A ticket is asked for with
// the bearer token (POST /api/v1/tickets), names the one path it opens,
// lasts TicketTTL and works once.

// TicketTTL is how long a ticket may wait for its websocket.
const TicketTTL = 30 * time.Second

// MaxTickets bounds the tickets waiting at once.
const MaxTickets = 1000

// ErrTooManyTickets: MaxTickets are waiting already.
var ErrTooManyTickets = fmt.Errorf("%d websocket tickets are waiting already; use or let them expire first", MaxTickets)

type ticket struct {
	p       Principal
	path    string
	expires time.Time
}

// NewTicket makes a ticket for p that opens path (as requested, e.g.
// /api/v1/vms/ID/console/ws) once, within TicketTTL.
func (t *Tokens) NewTicket(p Principal, path string) (api.Ticket, error) {
	secret := ticketPrefix + random(32)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for h, k := range t.tickets {
		if !now.Before(k.expires) {
			delete(t.tickets, h)
		}
	}
	if len(t.tickets) >= MaxTickets {
		return api.Ticket{}, ErrTooManyTickets
	}
	if !t.liveLocked(p.User, p.Epoch) {
		return api.Ticket{}, ErrUnauthenticated
	}
	exp := now.Add(TicketTTL)
	t.tickets[hashOf(secret)] = ticket{p: p, path: path, expires: exp}
	return api.Ticket{Ticket: secret, Path: path, ExpiresAt: exp.UTC()}, nil
}

// UseTicket spends a ticket on path: the principal it was made for, or
// ErrUnauthenticated (unknown, spent, expired, for another path, or made
// before a password change).
func (t *Tokens) UseTicket(secret, path string) (Principal, error) {
	if !strings.HasPrefix(secret, ticketPrefix) {
		return Principal{}, ErrUnauthenticated
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	h := hashOf(secret)
	k, ok := t.tickets[h]
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	delete(t.tickets, h) // spent, whatever comes of it
	if !t.now().Before(k.expires) || k.path != path || !t.liveLocked(k.p.User, k.p.Epoch) {
		return Principal{}, ErrUnauthenticated
	}
	p := k.p
	p.Kind = "ticket"
	p.ExpiresAt = k.expires
	return p, nil
}
