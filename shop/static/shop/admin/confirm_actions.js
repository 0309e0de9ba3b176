/* Dangerous admin actions ask before they run: a changelist whose action menu has one of
   these selected asks for confirmation on submit. (The campaign and order pages' own
   controls have confirmation pages.) */
(function () {
  "use strict";
  var QUESTIONS = {
    pause: "Pause {n} campaign(s)? New claims and orders will get campaign_not_active.",
    resume: "Resume {n} campaign(s)? Claims and orders will be taken again.",
    end: "End {n} campaign(s) for good? An ended campaign cannot be resumed.",
    cancel: "Cancel {n} order(s)? Their stock, coupons and budget are released; this cannot be undone.",
    unpark: "Return {n} parked order(s) to their line?",
    replay: "Replay {n} selected row(s)?",
    resend_callbacks: "Resend the latest callback of {n} order(s)? Chatbots get a duplicate of the same event."
  };
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || form.id !== "changelist-form") { return; }
    var select = form.querySelector("select[name=action]");
    var question = select && QUESTIONS[select.value];
    if (!question) { return; }
    var all = form.querySelector("input[name=select_across]");
    var n = all && all.value === "1" ? "all" : String(form.querySelectorAll("input.action-select:checked").length);
    if (!window.confirm(question.replace("{n}", n))) { event.preventDefault(); }
  }, true);
})();
