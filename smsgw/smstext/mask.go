package smstext

import "strings"

// Mask hides the middle of a phone number for logs and errors. It keeps
// the first 3 and the last 4 characters, so "13800138000" becomes
// "138****8000". Strings of 6 characters or fewer are short codes such as
// "10086" and stay readable; 7 or 8 characters keep only the last 2, so
// that at least 2 characters are always hidden.
func Mask(number string) string {
	r := []rune(number)
	n := len(r)
	switch {
	case n <= 6:
		return number
	case n <= 8:
		return string(r[:3]) + strings.Repeat("*", n-5) + string(r[n-2:])
	default:
		return string(r[:3]) + strings.Repeat("*", n-7) + string(r[n-4:])
	}
}
