import { SaxesParser, type SaxesAttributeNS, type SaxesTagNS } from 'saxes';

/**
 * The R4 rules for narrative XHTML (https://hl7.org/fhir/R4/narrative.html, invariants txt-1 and txt-2):
 * a well-formed `<div xmlns="http://www.w3.org/1999/xhtml">` holding only the basic formatting elements and
 * attributes of HTML 4 chapters 7-11 and 15, links, images and inline style, with some text or an image.
 * Everything else (scripts, forms, frames, objects, base/link, event attributes) is refused by not being listed.
 */

const XHTML_NAMESPACE = 'http://www.w3.org/1999/xhtml';

/** The element names the HL7 validator allows for txt-1. */
const ELEMENTS = new Set([
  'p', 'br', 'div', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'a', 'span', 'b', 'em', 'i', 'strong', 'small', 'big', 'tt',
  'dfn', 'q', 'var', 'abbr', 'acronym', 'cite', 'blockquote', 'hr', 'address', 'bdo', 'kbd', 'sub', 'sup',
  'ul', 'ol', 'li', 'dl', 'dt', 'dd', 'pre', 'table', 'caption', 'colgroup', 'col', 'thead', 'tr', 'tfoot', 'tbody',
  'th', 'td', 'code', 'samp', 'img', 'map', 'area',
]);

/** Attributes allowed on any of those elements (core, i18n and table attributes). */
const COMMON_ATTRIBUTES = new Set([
  'title', 'style', 'class', 'id', 'lang', 'dir', 'accesskey', 'tabindex',
  'span', 'width', 'align', 'valign', 'char', 'charoff', 'abbr', 'axis', 'headers', 'scope', 'rowspan', 'colspan',
]);

const ELEMENT_ATTRIBUTES: Record<string, ReadonlySet<string>> = {
  a: new Set(['href', 'name', 'charset', 'type', 'hreflang', 'rel', 'rev', 'shape', 'coords']),
  img: new Set(['src', 'alt', 'longdesc', 'height', 'width', 'usemap', 'ismap', 'border']),
  blockquote: new Set(['cite']),
  q: new Set(['cite']),
  map: new Set(['name']),
  area: new Set(['shape', 'coords', 'href', 'nohref', 'alt']),
  table: new Set(['summary', 'width', 'border', 'frame', 'rules', 'cellspacing', 'cellpadding']),
  td: new Set(['nowrap']),
};

const XML_ATTRIBUTES = new Set(['lang', 'space']);
const URL_ATTRIBUTES = new Set(['href', 'src', 'cite', 'longdesc', 'usemap']);
const SAFE_URL_SCHEMES = new Set(['http', 'https', 'mailto', 'tel', 'urn']);

/** "Internally contained" style: nothing fetched (url(), @import), no script (expression()), no CSS escapes to hide either. */
const EXTERNAL_OR_ACTIVE_STYLE = /url\s*\(|expression\s*\(|@import|javascript:|\\/i;

class NarrativeRefused extends Error {}

const refuse = (reason: string): never => {
  throw new NarrativeRefused(reason);
};

/** Why a Narrative `div` is not valid R4 XHTML, or undefined when it is. */
export function narrativeProblem(div: string): string | undefined {
  const parser = new SaxesParser({ xmlns: true, position: false });
  let isRoot = true;
  let hasContent = false;
  parser.on('opentag', (tag) => {
    // Read here, not in an `xmldecl` handler: with a seventh handler saxes' parser parses several times slower.
    if (isRoot && parser.xmlDecl.version !== undefined) refuse('an XML declaration is not allowed');
    checkElement(tag, isRoot);
    isRoot = false;
    if (tag.local === 'img') hasContent = true;
  });
  parser.on('text', (text) => {
    if (/\S/.test(text)) hasContent = true;
  });
  parser.on('comment', checkComment);
  parser.on('cdata', () => refuse('CDATA sections are not allowed'));
  parser.on('doctype', () => refuse('a DOCTYPE is not allowed'));
  parser.on('processinginstruction', () => refuse('processing instructions are not allowed'));
  try {
    parser.write(div).close();
  } catch (err) {
    if (err instanceof NarrativeRefused) return err.message;
    return `not well-formed XHTML (${(err as Error).message.replace(/\.$/, '')}); expected <div xmlns="${XHTML_NAMESPACE}">...</div>`;
  }
  return hasContent ? undefined : 'the narrative has no text or image (txt-2)';
}

function checkElement(tag: SaxesTagNS, isRoot: boolean): void {
  if (tag.uri !== XHTML_NAMESPACE || tag.prefix !== '') refuse(`<${tag.name}> is not an element in the default XHTML namespace ${XHTML_NAMESPACE}`);
  if (isRoot && tag.local !== 'div') refuse(`the root element must be <div>, not <${tag.local}>`);
  if (!ELEMENTS.has(tag.local)) refuse(`<${tag.local}> is not allowed in a narrative (txt-1)`);
  for (const attribute of Object.values(tag.attributes)) checkAttribute(tag.local, attribute);
}

function checkAttribute(element: string, attribute: SaxesAttributeNS): void {
  const { prefix, local, name, value } = attribute;
  // Namespace declarations; the elements they would bring in are refused above.
  if (name === 'xmlns' || prefix === 'xmlns') return;
  const allowed = prefix === 'xml' ? XML_ATTRIBUTES.has(local) : prefix === '' && (COMMON_ATTRIBUTES.has(local) || ELEMENT_ATTRIBUTES[element]?.has(local) === true);
  if (!allowed) refuse(`attribute ${name} is not allowed on <${element}> (txt-1)`);
  if (URL_ATTRIBUTES.has(local) && !isSafeUrl(value, element === 'img' && local === 'src')) refuse(`${element}.${local} "${value}" is not an allowed URL`);
  if (local === 'style' && EXTERNAL_OR_ACTIVE_STYLE.test(value)) refuse(`style on <${element}> must not load or run anything`);
}

/** A relative reference, or an absolute URL with a scheme that cannot run script (an image may be inline data). */
function isSafeUrl(value: string, isImageSource: boolean): boolean {
  // Browsers drop tabs and newlines anywhere in a URL and controls and spaces around it (WHATWG URL parsing).
  const url = value.replace(/[\t\n\r]/g, '').replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, '');
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return true;
  return SAFE_URL_SCHEMES.has(scheme) || (isImageSource && /^data:image\//i.test(url));
}

/** HTML ends `<!-->` and `<!--->` at once where XML reads on, so what follows would be live markup in a browser. */
function checkComment(comment: string): void {
  if (comment.startsWith('>') || comment.startsWith('->')) refuse('a comment must not start with ">" or "->"');
}
