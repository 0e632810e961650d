// The service's `/metrics` (OpenMetrics text) read in the page: samples by name and labels,
// and the few figures the summary shows from them (sums, histogram means and quantiles).

/** Text into a list of `{name, labels, value}`; comments and `# EOF` are skipped. */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const found = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!found) continue;
    const labels = {};
    for (const pair of (found[3] || "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]] = pair[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: found[1], labels, value: Number(found[4]) });
  }
  return samples;
}

/** Samples of `name` whose labels include `match`. */
export function select(samples, name, match = {}) {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

export function sum(samples, name, match) {
  return select(samples, name, match).reduce((total, s) => total + s.value, 0);
}

/** A histogram's count, mean and estimated quantiles (from its cumulative buckets). */
export function histogram(samples, base, match = {}) {
  const count = sum(samples, `${base}_count`, match);
  const total = sum(samples, `${base}_sum`, match);
  const bounds = new Map();
  for (const s of select(samples, `${base}_bucket`, match)) {
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    bounds.set(le, (bounds.get(le) || 0) + s.value);
  }
  const buckets = [...bounds.entries()].sort((a, b) => a[0] - b[0]);
  const quantile = (q) => {
    if (!count) return NaN;
    const rank = q * count;
    let lower = 0;
    let below = 0;
    for (const [le, cumulative] of buckets) {
      if (cumulative >= rank) {
        if (le === Infinity) return lower;
        const inBucket = cumulative - below;
        return inBucket ? lower + ((le - lower) * (rank - below)) / inBucket : le;
      }
      lower = le;
      below = cumulative;
    }
    return lower;
  };
  return { count, mean: count ? total / count : NaN, p50: quantile(0.5), p90: quantile(0.9) };
}
