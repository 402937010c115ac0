package qemutest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/plinth/plinth/api"
)

// e2ePassword is the root password the end-to-end tests set on the DCUI.
const e2ePassword = "Plinth-e2e-pass-1"

// login logs c in to the appliance's API; later requests carry the token.
func (c *pinnedClient) login(t *testing.T, base, password string) {
	t.Helper()
	body, _ := json.Marshal(api.LoginRequest{User: api.RootUser, Password: password})
	resp, err := c.Post(base+api.MgmtdSessionsPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var s api.Session
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &s) != nil || s.Token == "" {
		t.Fatalf("login: %s: %s", resp.Status, b)
	}
	c.mu.Lock()
	c.token = s.Token
	c.mu.Unlock()
}

// firstLogin sets the root password through the serial console's DCUI,
// as an administrator does at first boot, and logs c in with it.
func firstLogin(ctx context.Context, t *testing.T, vm *VM, c *pinnedClient) {
	t.Helper()
	if err := SetPasswordViaDCUI(ctx, vm, e2ePassword); err != nil {
		t.Fatal(err)
	}
	c.login(t, vm.APIURL(), e2ePassword)
}
