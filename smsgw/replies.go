package smsgw

import (
	"fmt"

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
		return "Send TRIP for the places your phone has been in the last 15 days, or TRIP 30 for 30 days, then reply Y to confirm."
	}
	return "发送CXMYD查询近15天到达或途经的地点，发送CXMYD30查询近30天，收到提示后回复Y确认。"
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
