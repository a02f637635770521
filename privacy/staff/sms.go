package staff

import (
	"fmt"
	"time"
)

// What the subscriber is told, in Chinese and English. Every text names
// the window and the ticket, so that a subscriber who did not call
// customer service can say so, quoting the ticket.

// langOf checks a language name; empty is Chinese.
func langOf(s string) (string, error) {
	switch s {
	case "", "zh":
		return "zh", nil
	case "en":
		return "en", nil
	}
	return "", fmt.Errorf("%w: language must be zh or en", ErrInvalid)
}

func minutes(d time.Duration) int { return int((d + time.Minute - 1) / time.Minute) }

// codeText asks for consent: the code goes to customer service only if
// the subscriber agrees.
func codeText(lang string, days int, ticket, code string, ttl time.Duration) string {
	if lang == "en" {
		return fmt.Sprintf("Customer service asks to see where your phone has been in the last %d days (ticket %s). If you agree, tell them the code %s. Valid for %d minutes.", days, ticket, code, minutes(ttl))
	}
	return fmt.Sprintf("客服正在申请查询您近%d天的行程（工单%s）。如您同意，请将验证码%s告知客服，%d分钟内有效。", days, ticket, code, minutes(ttl))
}

// viewedText tells the subscriber their itinerary was shown.
func viewedText(lang string, days int, ticket string) string {
	if lang == "en" {
		return fmt.Sprintf("With your code, customer service viewed where your phone has been in the last %d days (ticket %s).", days, ticket)
	}
	return fmt.Sprintf("客服已凭您提供的验证码查询了您近%d天的行程（工单%s）。", days, ticket)
}

// wrongText tells the subscriber a wrong code was entered and the request
// still stands: someone guessing at a code is told to the one who can stop
// it.
func wrongText(lang string, days int, ticket string, left int) string {
	if lang == "en" {
		return fmt.Sprintf("Customer service entered a wrong code for seeing where your phone has been in the last %d days (ticket %s); %d tries left. Nothing was shown. If you did not agree, give no code.", days, ticket, left)
	}
	return fmt.Sprintf("客服为查询您近%d天行程（工单%s）输入的验证码有误，还可再试%d次，未查看任何信息。如非您本人同意，请勿告知验证码。", days, ticket, left)
}

// deniedText tells the subscriber a request was refused: the code was
// wrong too often, or came too late.
func deniedText(lang string, days int, ticket string, expired bool) string {
	if lang == "en" {
		why := "the code did not match"
		if expired {
			why = "the code expired"
		}
		return fmt.Sprintf("Customer service's request to see where your phone has been in the last %d days (ticket %s) was refused: %s. Nothing was shown.", days, ticket, why)
	}
	why := "验证码不符"
	if expired {
		why = "验证码已过期"
	}
	return fmt.Sprintf("客服查询您近%d天行程的申请（工单%s）因%s未获通过，未查看任何信息。", days, ticket, why)
}
