package mgmtd

import (
	"net"
	"net/http"
	"net/netip"

	"github.com/plinth/plinth/api"
)

// confirmNetwork keeps the management-network change applied on the console,
// for a client that reached this host on the change's new address: the
// local address of the client's connection goes to vmkernel, which compares
// it with the change's. Whatever the request body says is not asked.
func (s *Server) confirmNetwork(w http.ResponseWriter, r *http.Request) {
	local := localAddr(r)
	if !local.IsValid() {
		writeProblem(w, api.Problem{Status: http.StatusConflict,
			Detail: "the address this request arrived on is unknown, so it cannot confirm a management network change"})
		return
	}
	ch, err := s.vmk.ConfirmNetworkFrom(r.Context(), local.String())
	if err != nil {
		s.vmkernelError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ch)
}

// localAddr is the address of this host the request's connection arrived on.
func localAddr(r *http.Request) netip.Addr {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return netip.Addr{}
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
