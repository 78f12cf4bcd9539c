/** Case- and accent-insensitive form used by string search (FHIR R4 3.1.1.5.8). */
export function normalize(value: string): string {
  return value
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase();
}
