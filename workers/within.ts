// A bounded wait for the workers' shutdown paths: the answer of a check, or false when it does not come in time,
// so that a stuck Redis or job never holds up a worker's close.

/** `check`'s answer when it settles within `ms` (a failure answers false); false after `ms`, never waiting longer. */
export async function answerWithin(check: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      check.then(
        (answer) => answer,
        () => false,
      ),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
