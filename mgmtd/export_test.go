package mgmtd

import "net/http"

// ForwardHandler is the plain forward to vmkernel, for tests that tell
// forwarded routes from the others.
func (s *Server) ForwardHandler() http.HandlerFunc { return s.forward }
