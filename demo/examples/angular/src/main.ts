import { bootstrapApplication } from '@angular/platform-browser';
import { ExportComponent } from './app/export.component';

bootstrapApplication(ExportComponent).catch((err: unknown) => console.error(err));
