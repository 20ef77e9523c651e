// `keyfence report`: the review of a store as one self-contained HTML page (and its data as JSON).
import type { Store } from '../ingest/store.ts';
import { collectReview, type ReviewOptions, type ReviewResult } from './report-collect.ts';
import { buildReportData, type ReportData } from './report-data.ts';
import { renderReportHtml } from './report-html.ts';

export { buildReportData, type ReportData } from './report-data.ts';
export { renderReportHtml } from './report-html.ts';
export { collectReview, type ReviewOptions, type ReviewResult } from './report-collect.ts';

export interface Report {
  review: ReviewResult;
  data: ReportData;
  html: string;
}

/** Reads the store once and renders the page. */
export async function buildReport(store: Store, options: ReviewOptions): Promise<Report> {
  const review = await collectReview(store, options);
  const data = buildReportData(review);
  return { review, data, html: renderReportHtml(data) };
}

/** True when the report shows something a person must act on (the `report` command's exit 4). */
export function reportNeedsAttention(data: ReportData): boolean {
  return data.summary.urgentKeys > 0 || (data.drift?.needsAttention ?? false) || data.approval?.sealOk === false;
}
