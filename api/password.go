package api

import (
	"errors"
	"fmt"
	"unicode"
)

// MinPasswordLength is the shortest root password the host accepts.
const MinPasswordLength = 8

// CheckPassword says why password is too weak for user, or nil: at least
// MinPasswordLength characters from at least three of lower case, upper
// case, digits and other characters, and not containing the user name.
func CheckPassword(user, password string) error {
	if len([]rune(password)) < MinPasswordLength {
		return fmt.Errorf("the password must have at least %d characters", MinPasswordLength)
	}
	if len(password) > 72 {
		return errors.New("the password must have at most 72 bytes")
	}
	var lower, upper, digit, other int
	for _, r := range password {
		switch {
		case unicode.IsLower(r):
			lower = 1
		case unicode.IsUpper(r):
			upper = 1
		case unicode.IsDigit(r):
			digit = 1
		case unicode.IsControl(r):
			return errors.New("the password must not contain control characters")
		default:
			other = 1
		}
	}
	if lower+upper+digit+other < 3 {
		return errors.New("the password must mix at least three of: lower case, upper case, digits, other characters")
	}
	if user != "" && containsFold(password, user) {
		return fmt.Errorf("the password must not contain the user name %q", user)
	}
	return nil
}

func containsFold(s, sub string) bool {
	rs, rsub := []rune(s), []rune(sub)
	for i := 0; i+len(rsub) <= len(rs); i++ {
		match := true
		for j := range rsub {
			if unicode.ToLower(rs[i+j]) != unicode.ToLower(rsub[j]) {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
