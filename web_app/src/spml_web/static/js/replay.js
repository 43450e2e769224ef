// Pacing a recorded session's replay (docs/web_app.md, "Replaying a session"). Frames always carry
// their recorded t_ms, so the server's time grid sees the recorded timing (frame rate, gaps) at every
// speed; only the wall-clock pace changes:
//   "0.5", "1", "2"  each frame is sent at (its t_ms - the first t_ms) / speed after the start;
//   "max"            as fast as the server answers: at most MAX_IN_FLIGHT frames wait for an answer
//                    (a prediction for that frame or a later one); one unanswered for ANSWER_WAIT_MS is
//                    given up on (a frame completes no grid instant, or there is no model to answer).

export const SPEEDS = [
  ["0.5", "0.5×"],
  ["1", "1× (as recorded)"],
  ["2", "2×"],
  ["max", "as fast as the server answers"],
];
const MAX_IN_FLIGHT = 3;
const ANSWER_WAIT_MS = 250; // the server's default max_age_ms: an older frame it drops anyway

/** A pacer for one replay at `speed` ("0.5", "1", "2" or "max"); throws on any other value. */
export function createPacer(speed) {
  const factor = speed === "max" ? null : Number(speed);
  if (factor !== null && !(factor > 0)) throw new Error(`replay speed ${JSON.stringify(speed)} is not a choice`);
  const start = performance.now();
  let t0 = null;
  let inFlight = []; // {frame, at}, oldest first
  let wake = null;

  function sleep(ms) {
    return new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, ms);
    });
  }

  return {
    speed,
    /** Resolves when frame `f` ({frame, t_ms}) is due. */
    async before(f) {
      if (factor !== null) {
        if (t0 === null) t0 = f.t_ms;
        const wait = start + (f.t_ms - t0) / factor - performance.now();
        if (wait > 1) await sleep(wait);
        return;
      }
      while (inFlight.length >= MAX_IN_FLIGHT) {
        const left = inFlight[0].at + ANSWER_WAIT_MS - performance.now();
        if (left <= 0) inFlight.shift();
        else await sleep(left);
      }
    },
    /** Frame number `frame` was sent. */
    sent(frame) {
      if (factor === null) inFlight.push({ frame, at: performance.now() });
    },
    /** The server answered frame `frame`: it and every earlier frame are done. */
    answered(frame) {
      if (factor !== null || !inFlight.length) return;
      inFlight = inFlight.filter((x) => x.frame > frame);
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    },
  };
}
