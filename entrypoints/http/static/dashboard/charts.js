// Charts drawn by uPlot (vendored, loaded by index.html as the global `uPlot`), sized to their
// container and redrawn at its new width when the window is resized.
const HEIGHT = 260;
const COLOUR = "#1f5f8b";

function sized(container, options, data) {
  const width = () => Math.max(280, container.clientWidth - 16);
  const plot = new uPlot({ ...options, width: width(), height: HEIGHT }, data, container);
  const resized = new ResizeObserver(() => plot.setSize({ width: width(), height: HEIGHT }));
  resized.observe(container);
  return plot;
}

// times: bucket starts in seconds since the epoch.
export function timeChart(container, times, values, label) {
  return sized(
    container,
    {
      scales: { x: { time: true } },
      series: [{}, { label, stroke: COLOUR, fill: "rgba(31, 95, 139, 0.12)", width: 2, points: { show: times.length < 60 } }],
      axes: [{}, { size: 60 }],
    },
    [times, values],
  );
}

// One bar per label, e.g. a funnel's stages in order.
export function barChart(container, labels, values, label) {
  const positions = labels.map((_, i) => i);
  return sized(
    container,
    {
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] } },
      series: [{ label: "stage", value: (_, i) => labels[i] ?? "" }, { label, fill: "rgba(31, 95, 139, 0.7)", stroke: COLOUR, paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } }],
      axes: [{ values: (_, ticks) => ticks.map((t) => labels[t] ?? ""), splits: () => positions }, { size: 50 }],
    },
    [positions, values],
  );
}
