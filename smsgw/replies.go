package smsgw

import (
	"fmt"
	"strings"
	"time"

	"github.com/roamtrail/roamtrail/itinerary"
)

// The dialogue's own wording; itineraries are worded by itinerary.Wording.
// Every text here has a golden file (testdata/replies/*.golden).

func promptText(days int, lang itinerary.Lang, valid int) string {
	if lang == itinerary.English {
		return fmt.Sprintf("You asked where your phone has been in the last %d days. Reply Y to consent to this lookup, or N to cancel. Valid for %d minutes.", days, valid)
	}
	return fmt.Sprintf("您正在查询手机近%d天到达或途经的地点。回复Y即表示您授权本次查询，回复N取消，%d分钟内有效。", days, valid)
}

func nothingPendingText(lang itinerary.Lang) string {
	if lang == itinerary.English {
		return "You have no request waiting for confirmation. Send TRIP for the last 15 days or TRIP 30 for the last 30 days."
	}
	return "您当前没有待确认的查询。发送CXMYD查询近15天行程，发送CXMYD30查询近30天行程。"
}

func cancelledText(lang itinerary.Lang) string {
	if lang == itinerary.English {
		return "Your request is cancelled. Nothing was looked up."
	}
	return "已取消本次查询，未查询您的任何信息。"
}

func helpText(lang itinerary.Lang) string {
	if lang == itinerary.English {
		return "Send TRIP for where your phone has been in the last 15 days, or TRIP 30 for 30 days, then Y to confirm. LOG: who looked. STOP: opt out. START: opt in."
	}
	return "发送CXMYD查询近15天行程，CXMYD30查询近30天，收到提示后回复Y确认。发送JL查看查询记录，TD退订，KT开通。"
}

func limitText(limit int, lang itinerary.Lang) string {
	if lang == itinerary.English {
		return fmt.Sprintf("You have reached today's limit of %d requests. Please try again tomorrow.", limit)
	}
	return fmt.Sprintf("您今日的查询次数已达上限（%d次），请明天再试。", limit)
}

func busyText(lang itinerary.Lang) string {
	if lang == itinerary.English {
		return "The service is busy. Please try again in a few minutes."
	}
	return "系统繁忙，请稍后再试。"
}

func optedOutText(lang itinerary.Lang) string {
	if lang == itinerary.English {
		return "You have opted out: your location history is deleted and nothing more will be recorded. Send START to opt back in."
	}
	return "已为您退订行程记录，您的历史行程已删除，今后不再记录。发送KT可重新开通。"
}

func optedInText(lang itinerary.Lang) string {
	if lang == itinerary.English {
		return "Location recording is on from now. Send STOP at any time to opt out and delete your history."
	}
	return "已为您开通行程记录，自现在起记录您到达或途经的地点。发送TD可随时退订并删除历史行程。"
}

// recordingOffText answers a request from a subscriber who opted out (or,
// where recording needs an opt-in, never opted in): no itinerary, and how
// to turn recording on.
func recordingOffText(lang itinerary.Lang) string {
	if lang == itinerary.English {
		return "Location recording is off for your number, so there is no itinerary to send. Send START to turn it on; places from then on can be looked up."
	}
	return "您的行程记录未开通或已退订，没有可查询的行程。如需开通请发送KT，开通后的行程可以查询。"
}

// access is one lookup of a subscriber's data as JL lists it: when, by the
// subscriber or by staff (never which operator), over how many days.
type access struct {
	When  time.Time
	Staff bool
	Days  int // 0 if not known
}

// accessesText lists accesses, newest first, in loc's time; the year is
// shown only for a year other than now's.
func accessesText(list []access, lang itinerary.Lang, loc *time.Location, now time.Time) string {
	en := lang == itinerary.English
	if len(list) == 0 {
		if en {
			return "Nobody has looked up your location data."
		}
		return "没有查询您行程数据的记录。"
	}
	year := now.In(loc).Year()
	var b strings.Builder
	if en {
		b.WriteString("Your location data was last looked up: ")
	} else {
		fmt.Fprintf(&b, "您的行程数据最近%d次被查询：", len(list))
	}
	for i, a := range list {
		t := a.When.In(loc)
		if en {
			if i > 0 {
				b.WriteString("; ")
			}
			layout := "2 Jan 15:04"
			if t.Year() != year {
				layout = "2 Jan 2006 15:04"
			}
			who := "by you"
			if a.Staff {
				who = "by customer service"
			}
			fmt.Fprintf(&b, "%s %s", t.Format(layout), who)
			if a.Days > 0 {
				fmt.Fprintf(&b, " (%d days)", a.Days)
			}
			continue
		}
		if i > 0 {
			b.WriteString("；")
		}
		if t.Year() != year {
			fmt.Fprintf(&b, "%d年", t.Year())
		}
		fmt.Fprintf(&b, "%d月%d日 %s ", t.Month(), t.Day(), t.Format("15:04"))
		who := "本人"
		if a.Staff {
			who = "客服"
		}
		b.WriteString(who + "查询")
		if a.Days > 0 {
			fmt.Fprintf(&b, "近%d天", a.Days)
		}
	}
	if en {
		b.WriteString(".")
	} else {
		b.WriteString("。")
	}
	return b.String()
}
