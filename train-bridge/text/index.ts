// The text side of FastVLM training (issue #13, "The data path"): Qwen2 tokenizer, conv_qwen_2 rendering and
// labels, image splicing, padded batches and the group-by-modality order. Interface as agreed with `lm`; additions:
// `collate` takes optional { padToMultipleOf }, ImageSlot.count may be < tokensPerImage when max length cut an image.

export {
  type BatchImageSlot,
  type CollateOptions,
  collate,
  collatePacked,
  type TextBatch,
} from './collate.ts';
export {
  DEFAULT_SYSTEM_MESSAGE,
  FASTVITHD_STRIDE,
  IGNORE_INDEX,
  IMAGE_TOKEN,
  IMAGE_TOKEN_INDEX,
  tokensPerImageAt,
} from './constants.ts';
export {
  ConversationError,
  type ConversationTurn,
  type ImageTokenPosition,
  moveImageTokensToFront,
  type TokenizedConversation,
  type TokenizeOptions,
  tokenizeConversation,
} from './conversation.ts';
export { IMAGE_SLOT_ID, type ImageSlot, layoutSequence, type SequenceLayout } from './layout.ts';
export { groupByModalityLength, type ModalityOrderOptions, modalityLength } from './modality-order.ts';
export {
  loadQwen2Tokenizer,
  type Qwen2Tokenizer,
  shippedTokenizerPath,
  TokenizerFileError,
} from './tokenizer.ts';
